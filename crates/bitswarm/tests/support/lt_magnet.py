"""libtorrent on both sides of a magnet link (BEP 9), for bitswarm's magnet tests and benchmark.

    lt_magnet.py seed TORRENT SAVE_DIR [--listen IP] [--dht-bootstrap HOST:PORT]
        Seeds with the ut_metadata extension (so magnet peers can fetch the info dictionary)
        until SIGINT/SIGTERM. Prints `listening on IP:PORT`, then `ready` once checked.

    lt_magnet.py fetch MAGNET SAVE_DIR [--connect HOST:PORT] [--metadata-only] [--listen IP]
                       [--dht-bootstrap HOST:PORT]
        Adds the magnet link (parse_magnet_uri, no tracker, no DHT unless --dht-bootstrap),
        dials the --connect peers (if any), prints
        `metadata: NAME (N pieces) in X.XXX s` on metadata_received_alert (seconds since the
        process started, and `lt_internal=X.XXX` since the torrent was added), then
        `complete: NAME` once every piece is verified, and exits 0. With --metadata-only it
        exits right after the metadata line.

    --dht-bootstrap HOST:PORT (repeatable; both modes) turns the DHT on, bootstrapped from
        those nodes only, with lt_dht.py's settings for loopback (the DHT's UDP port is the
        listen port's number). The torrent announces itself on the DHT (force_dht_announce)
        once the DHT has bootstrapped, and — while it has no peer — again every 5 s, as
        libtorrent would on its own only every 15 minutes. Extra lines: `dht bootstrapped`,
        `dht_reply N` (a DHT lookup of the torrent found N peers; once per N),
        `peer IP:PORT` (a peer connection, whoever dialled), `peer_closed IP:PORT REASON`.

Run it with Debian's /usr/bin/python3 (python3-libtorrent). Every wait is bounded by
--timeout seconds (exit status 2 when it runs out).
"""
import time

STARTED = time.monotonic()

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import libtorrent as lt  # noqa: E402

from lt_dht import loopback_dht_settings  # noqa: E402

# With --dht-bootstrap: seconds between DHT announces while the torrent has no peer.
DHT_REANNOUNCE = 5.0


def say(line):
    print(line, flush=True)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["seed", "fetch"])
    p.add_argument("source", help="the .torrent (seed) or the magnet link (fetch)")
    p.add_argument("save_dir")
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--metadata-only", action="store_true")
    p.add_argument("--dht-bootstrap", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--timeout", type=float, default=120.0)
    return p.parse_args()


def make_session(args):
    settings = {
        "listen_interfaces": f"{args.listen}:0",
        # Only the peers we are told about: no DHT, local discovery or port mapping.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP, plaintext (bitswarm speaks neither uTP nor stream encryption).
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.storage_notification),
    }
    if args.dht_bootstrap:
        settings.update(loopback_dht_settings(args.dht_bootstrap))
        settings["alert_mask"] |= int(lt.alert.category_t.dht_notification
                                      | lt.alert.category_t.connect_notification)
    # No default plugins; ut_metadata is what this script is about.
    ses = lt.session(settings, 0)
    ses.add_extension("ut_metadata")
    for node in args.dht_bootstrap:
        ses.add_dht_node(endpoint(node))
    return ses


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main():
    args = parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = make_session(args)
    if args.mode == "seed":
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.source)
    else:
        atp = lt.parse_magnet_uri(args.source)
        atp.trackers = []
    atp.save_path = args.save_dir
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    added = time.monotonic()
    h = ses.add_torrent(atp)
    say(f"listening on {args.listen}:{ses.listen_port()}")
    peers = [endpoint(c) for c in args.connect]
    deadline = time.monotonic() + args.timeout
    ready = have_metadata = bootstrapped = False
    last_dial = last_announce = 0.0
    dht_replies = set()
    while not stop:
        now = time.monotonic()
        if now > deadline:
            say("timeout")
            sys.exit(2)
        for a in ses.pop_alerts():
            if isinstance(a, lt.metadata_received_alert) and not have_metadata:
                have_metadata = True
                ti = h.torrent_file()
                say(f"metadata: {ti.name()} ({ti.num_pieces()} pieces) in "
                    f"{now - STARTED:.3f} s lt_internal={now - added:.3f}")
                if args.metadata_only:
                    return
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                say(f"error {a.message()}")
            elif isinstance(a, lt.dht_bootstrap_alert):
                say("dht bootstrapped")
                bootstrapped = True
                last_announce = 0.0
            elif isinstance(a, lt.dht_reply_alert) and a.num_peers not in dht_replies:
                dht_replies.add(a.num_peers)
                say(f"dht_reply {a.num_peers}")
            elif isinstance(a, lt.peer_connect_alert):
                say(f"peer {a.endpoint[0]}:{a.endpoint[1]}")
            elif isinstance(a, lt.peer_disconnected_alert):
                say(f"peer_closed {a.endpoint[0]}:{a.endpoint[1]} {a.error.message()}")
        st = h.status()
        if args.mode == "seed" and not ready and st.is_seeding:
            ready = True
            say("ready")
        # Dial at once, and again after 5 s without a connection.
        if peers and st.num_peers == 0 and now - last_dial > 5.0:
            last_dial = now
            for ep in peers:
                h.connect_peer(ep)
        if bootstrapped and st.num_peers == 0 and now - last_announce > DHT_REANNOUNCE:
            last_announce = now
            h.force_dht_announce()
        if args.mode == "fetch" and have_metadata and st.is_finished:
            say(f"complete: {st.name}")
            return
        ses.wait_for_alert(10)


if __name__ == "__main__":
    main()
