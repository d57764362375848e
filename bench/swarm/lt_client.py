"""A libtorrent swarm member for bench/swarm.sh: seeder or leecher, peers from the torrent's tracker.

Prints the same lines `bitswarm download` / `bitswarm seed` print, so the driver reads both
the same way:

    listening on IP:PORT             session bound (before the torrent is added)
    armed                            with --wait-go: waiting for a line on stdin
    ready                            torrent checked (seeding) or started (leeching)
    complete: NAME                   every piece verified (leeching only)
    summary: downloaded=B uploaded=B wasted=B          last line, at exit

Runs until SIGINT or SIGTERM (a leecher keeps seeding after `complete:`, like
`bitswarm download --seed`). Settings: libtorrent's defaults except no DHT, local discovery or
port mapping (the tracker is the only peer source), TCP only and plaintext (what bitswarm
speaks, so the two runs use the same transport), and every address in libtorrent's global
peer class (see make_session; --local-class keeps its LAN mode). Run it with Debian's
/usr/bin/python3.

With --free-ride it never unchokes anyone (libtorrent's `unchoke_slots_limit` 0): a
free-rider that downloads and uploads nothing, for crates/bitswarm/tests/netns_tft.rs.

usage: lt_client.py TORRENT SAVE_DIR --listen IP [--seed] [--wait-go] [--free-ride] [--leave]
                    [--local-class]
"""
import argparse
import signal
import sys

import libtorrent as lt


def say(line):
    print(line, flush=True)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("torrent")
    p.add_argument("save_dir")
    p.add_argument("--listen", required=True, help="IP to bind (port 6881)")
    p.add_argument("--seed", action="store_true", help="the data is in SAVE_DIR: check and seed it")
    p.add_argument("--wait-go", action="store_true",
                   help="set up the session, print `armed`, add the torrent after a line on stdin")
    p.add_argument("--free-ride", action="store_true", help="never unchoke a peer")
    p.add_argument("--leave", action="store_true", help="exit once complete (no seeding)")
    p.add_argument("--local-class", action="store_true",
                   help="keep libtorrent's LAN treatment of private addresses (no unchoke limit)")
    return p.parse_args()


def make_session(listen, free_ride, local_class):
    settings = {
        "listen_interfaces": f"{listen}:6881",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.storage_notification
                          | lt.alert.category_t.tracker_notification),
    }
    if free_ride:
        # No unchokes, and no allowed-fast pieces (BEP 6) served to choked peers either.
        settings["unchoke_slots_limit"] = 0
        settings["allowed_fast_set_size"] = 0
    # Default plugins (ut_metadata, ut_pex, smart_ban) as any libtorrent client has them.
    ses = lt.session(settings)
    if not local_class:
        # The hosts are on 10/8, which libtorrent puts in its "local" peer class: no rate
        # limits and no unchoke slots (every interested peer unchoked), its LAN behaviour.
        # Putting every IPv4 address in the global class makes it treat them as the internet
        # peers they stand for, with its choker at work, as bitswarm's is.
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


def main():
    args = parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = make_session(args.listen, args.free_ride, args.local_class)
    say(f"listening on {args.listen}:{ses.listen_port()}")
    if args.wait_go:
        say("armed")
        if not sys.stdin.readline():
            sys.exit("lt_client: stdin closed before the start signal")
    h = add_torrent(ses, args)
    ready = complete = False
    while not stop:
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                say(f"error {a.message()}")
            elif isinstance(a, lt.tracker_error_alert):
                print(f"tracker error: {a.message()}", file=sys.stderr, flush=True)
        st = h.status()
        if not ready and st.state in (lt.torrent_status.seeding, lt.torrent_status.downloading,
                                      lt.torrent_status.finished):
            if args.seed and not st.is_seeding:
                sys.exit(f"lt_client: the data in {args.save_dir} does not match the torrent "
                         f"({st.progress * 100:.1f}% valid)")
            ready = True
            say("ready")
        if ready and not args.seed and not complete and st.is_finished:
            complete = True
            say(f"complete: {st.name}")
            if args.leave:
                break
        ses.wait_for_alert(50)
    st = h.status()
    wasted = st.total_failed_bytes + st.total_redundant_bytes
    say(f"summary: downloaded={st.total_payload_download} uploaded={st.total_payload_upload} "
        f"wasted={wasted}")


if __name__ == "__main__":
    main()
