"""A libtorrent DHT node for bitswarm's DHT interop tests (crates/bitswarm/tests/dht_libtorrent.rs).

Runs a libtorrent 2.0 session whose only job is the DHT, bootstrapped from the nodes given on
the command line (a bitswarm node on 127.0.0.1 in the tests), and takes commands on stdin:

    add INFOHASH                add a torrent known by its info-hash only (as a magnet link
                                without trackers): libtorrent announces it on the DHT with its
                                listen port, as any client does (force_dht_announce)
    get_peers INFOHASH          dht_get_peers: look the torrent's peers up
    stats                       print a `stats:` line now
    quit                        exit

and says what happens on stdout, one line each:

    listening on 127.0.0.1:PORT            first line: the DHT's UDP address
    bootstrapped                           dht_bootstrap_alert
    announce_received INFOHASH IP:PORT     another node announced a peer to us (dht_announce_alert)
    peers INFOHASH IP:PORT... after=S      a get_peers reply carried peers (dht_get_peers_reply_alert),
                                           S seconds after the last get_peers of INFOHASH
    dht_reply INFOHASH N                   the torrent's own DHT lookup found N peers (dht_reply_alert)
    stats: nodes=N active_requests=N       every --stats-interval seconds (dht_stats_alert)
    dht_log ...                            with --verbose: libtorrent's DHT log

Settings that let libtorrent's DHT work on loopback (libtorrent 2.0.8): routing-table and
search results are normally limited to one node per IP (everything here is 127.0.0.1), so
`dht_restrict_routing_ips` and `dht_restrict_search_ips` are off; `dht_enforce_node_id` stays
off (the default) since a loopback address has no BEP 42 id; the per-IP rate limit
(`dht_block_ratelimit`, 5 packets/s, then blocked for 5 minutes) and the DHT upload limit are
raised, since every node of a test shares 127.0.0.1; no default bootstrap routers, no local
service discovery, UPnP or NAT-PMP, so nothing leaves the machine.

usage: lt_dht.py --bootstrap HOST:PORT [--bootstrap ...] [--listen IP] [--verbose]
Run it with Debian's /usr/bin/python3 (python3-libtorrent).
"""
import argparse
import queue
import signal
import sys
import tempfile
import threading
import time

import libtorrent as lt


# Where a torrent added by info-hash would save data (it never gets metadata in the tests).
SAVE_PATH = tempfile.gettempdir()
# When each info-hash was last looked up (get_peers), to time the replies.
ASKED = {}


def say(line):
    print(line, flush=True)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--stats-interval", type=float, default=1.0)
    p.add_argument("--verbose", action="store_true", help="print libtorrent's DHT log")
    return p.parse_args()


def loopback_dht_settings(bootstrap):
    """The DHT settings described above, bootstrapped from `bootstrap` (HOST:PORT strings).
    lt_magnet.py uses them too."""
    return {
        "enable_dht": True,
        "dht_bootstrap_nodes": ",".join(bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        # libtorrent blocks an IP sending more than 5 DHT packets a second for 5 minutes,
        # and sends at most 8000 B/s: every node here is 127.0.0.1.
        "dht_block_ratelimit": 1000000,
        "dht_upload_rate_limit": 10000000,
    }


def make_session(args):
    mask = (lt.alert.category_t.dht_notification
            | lt.alert.category_t.dht_operation_notification
            | lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.tracker_notification)
    if args.verbose:
        mask |= lt.alert.category_t.dht_log_notification
    settings = {
        "listen_interfaces": f"{args.listen}:0",
        **loopback_dht_settings(args.bootstrap),
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": int(mask),
    }
    return lt.session(settings, 0)


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def read_commands(commands):
    for line in sys.stdin:
        commands.put(line.split())
    commands.put(["quit"])


def run_command(ses, words):
    """Runs one stdin command; returns False to quit."""
    if not words:
        return True
    if words[0] == "quit":
        return False
    if words[0] == "add" and len(words) == 2:
        # (session.dht_announce cannot be called from Python in 2.0.8: its flags type is not
        # exposed; a torrent announces itself.)
        atp = lt.add_torrent_params()
        atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(words[1])))
        atp.save_path = SAVE_PATH
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        ses.add_torrent(atp).force_dht_announce()
    elif words[0] == "get_peers" and len(words) == 2:
        ASKED[words[1]] = time.monotonic()
        ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(words[1])))
    elif words[0] == "stats":
        ses.post_dht_stats()
    else:
        say(f"error unknown command {' '.join(words)}")
    return True


def report(alert):
    if isinstance(alert, lt.dht_bootstrap_alert):
        say("bootstrapped")
    elif isinstance(alert, lt.dht_announce_alert):
        say(f"announce_received {alert.info_hash} {alert.ip}:{alert.port}")
    elif isinstance(alert, lt.dht_get_peers_reply_alert):
        peers = " ".join(f"{ip}:{port}" for ip, port in alert.peers())
        asked = ASKED.get(str(alert.info_hash))
        after = f" after={time.monotonic() - asked:.3f}" if asked is not None else ""
        say(f"peers {alert.info_hash} {peers}{after}")
    elif isinstance(alert, lt.dht_reply_alert):
        say(f"dht_reply {alert.handle.info_hashes().v1} {alert.num_peers}")
    elif isinstance(alert, lt.dht_stats_alert):
        nodes = sum(b["num_nodes"] for b in alert.routing_table)
        say(f"stats: nodes={nodes} active_requests={len(alert.active_requests)}")
    elif isinstance(alert, lt.dht_log_alert):
        say(f"dht_log {alert.message()}")
    elif isinstance(alert, lt.listen_failed_alert):
        sys.exit(f"lt_dht: {alert.message()}")


def main():
    args = parse_args()
    if not args.bootstrap:
        sys.exit("lt_dht: give at least one --bootstrap HOST:PORT")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = make_session(args)
    for node in args.bootstrap:
        ses.add_dht_node(endpoint(node))
    say(f"listening on {args.listen}:{ses.listen_port()}")
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    last_stats = 0.0
    while not stop:
        try:
            while True:
                if not run_command(ses, commands.get_nowait()):
                    stop.append(1)
                    break
        except queue.Empty:
            pass
        for alert in ses.pop_alerts():
            report(alert)
        now = time.monotonic()
        if now - last_stats >= args.stats_interval:
            last_stats = now
            ses.post_dht_stats()
        ses.wait_for_alert(50)


if __name__ == "__main__":
    main()
