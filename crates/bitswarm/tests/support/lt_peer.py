"""A libtorrent peer for bitswarm's end-to-end tests and transfer benchmark.

Speaks the same small stdout protocol as `bitswarm download` / `bitswarm seed`, so the Rust
harness drives either the same way:

    listening on 127.0.0.1:PORT      first line
    ready                            torrent checked (seeding) or started (leeching)
    peer dialing|incoming|disconnected|banned IP:PORT [reason]
    hash_failed piece=N
    stats: done=B uploaded=B downloaded=B peers=N      every --stats-interval seconds
    complete: NAME                   every wanted piece verified (leeching only)
    summary: downloaded=B uploaded=B wasted=B          last line, at exit

A leecher exits 0 after `complete:` unless --stay; a seeder (or --stay) runs until SIGINT or
SIGTERM. Run it with Debian's /usr/bin/python3 (python3-libtorrent).

usage: lt_peer.py TORRENT SAVE_DIR [--seed] [--connect HOST:PORT]... [--listen IP]
                  [--upload-limit BYTES_PER_S] [--stay] [--stats-interval S]
"""
import argparse
import signal
import sys
import time

import libtorrent as lt


def say(line):
    print(line, flush=True)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("torrent")
    p.add_argument("save_dir")
    p.add_argument("--seed", action="store_true", help="the data is in SAVE_DIR: check and seed it")
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = none")
    p.add_argument("--stay", action="store_true", help="keep running after completing")
    p.add_argument("--stats-interval", type=float, default=0.2)
    return p.parse_args()


def make_session(args):
    settings = {
        "listen_interfaces": f"{args.listen}:0",
        # Nothing but the peers we are told about: no DHT, local discovery, port mapping.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only, plaintext: bitswarm speaks neither uTP nor message stream encryption.
        # With libtorrent's defaults a dial to bitswarm still works, but late: uTP first
        # (times out after 3 s), then TCP with encryption (bitswarm closes it), then plain.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        # On loopback every peer shares 127.0.0.1; by default libtorrent keeps one
        # connection per IP.
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": args.upload_limit,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.connect_notification
                          | lt.alert.category_t.peer_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.storage_notification),
    }
    # Flags 0: no default plugins. ut_pex would tell peers about each other (a test's corrupt
    # peer must only ever be dialled by the client under test); smart_ban is wanted.
    ses = lt.session(settings, 0)
    ses.add_extension("smart_ban")
    if args.upload_limit:
        # Local peers (127/8, 10/8, 192.168/16...) are in libtorrent's unlimited "local" peer
        # class by default, so a rate limit would not apply on loopback: put every IPv4
        # address in the global class, which upload_rate_limit governs.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    return ses


def add_torrent(ses, args):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_dir
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(atp)


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def summary(st):
    wasted = st.total_failed_bytes + st.total_redundant_bytes
    return (f"summary: downloaded={st.total_payload_download} "
            f"uploaded={st.total_payload_upload} wasted={wasted}")


def main():
    args = parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = make_session(args)
    h = add_torrent(ses, args)
    say(f"listening on {args.listen}:{ses.listen_port()}")
    peers = [endpoint(c) for c in args.connect]
    ready = complete = False
    last_stats = last_dial = 0.0
    while not stop:
        for a in ses.pop_alerts():
            if isinstance(a, lt.peer_connect_alert):
                say(f"peer dialing {a.endpoint[0]}:{a.endpoint[1]}")
            elif isinstance(a, lt.incoming_connection_alert):
                say(f"peer incoming {a.endpoint[0]}:{a.endpoint[1]}")
            elif isinstance(a, lt.peer_disconnected_alert):
                say(f"peer disconnected {a.endpoint[0]}:{a.endpoint[1]} {a.error.message()}")
            elif isinstance(a, lt.peer_ban_alert):
                say(f"peer banned {a.endpoint[0]}:{a.endpoint[1]}")
            elif isinstance(a, lt.hash_failed_alert):
                say(f"hash_failed piece={a.piece_index}")
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                say(f"error {a.message()}")
        st = h.status()
        now = time.monotonic()
        if not ready and st.state in (lt.torrent_status.seeding, lt.torrent_status.downloading,
                                      lt.torrent_status.finished):
            if args.seed and not st.is_seeding:
                sys.exit(f"lt_peer: the data in {args.save_dir} does not match the torrent "
                         f"({st.progress * 100:.1f}% valid)")
            ready = True
            say("ready")
        # Dial the given peers once ready, and again after 5 s without any connection (a
        # peer that was not listening yet, or closed on us). Not sooner: re-adding a peer
        # restarts libtorrent's own attempt, e.g. its fallback from uTP to TCP after 3 s.
        if ready and peers and st.num_peers == 0 and now - last_dial > 5.0:
            last_dial = now
            for ep in peers:
                h.connect_peer(ep)
        if now - last_stats >= args.stats_interval:
            last_stats = now
            say(f"stats: done={st.total_done} uploaded={st.total_payload_upload} "
                f"downloaded={st.total_payload_download} peers={st.num_peers}")
        if ready and not args.seed and not complete and st.is_finished:
            complete = True
            say(f"complete: {st.name}")
            if not args.stay:
                break
        ses.wait_for_alert(50)
    st = h.status()
    say(f"stats: done={st.total_done} uploaded={st.total_payload_upload} "
        f"downloaded={st.total_payload_download} peers={st.num_peers}")
    say(summary(st))


if __name__ == "__main__":
    main()
