#!/usr/bin/python3
"""Two libtorrent sessions on 127.0.0.1 share one small torrent through a tracker.

usage: libtorrent_swarm.py TRACKER_URL WORK_DIR [TIMEOUT_S]

Session A seeds a generated file; session B downloads it. Both find each other only through
the tracker (no DHT, LSD, UPnP or PEX help). Prints one JSON line on stdout:
{"info_hash": <hex>, "completed": bool, "seconds": float, "a_port": int, "b_port": int,
 "tracker_errors": [...]}, then keeps both sessions seeding until a line (or end of file)
arrives on stdin, removes the torrents (so both announce `stopped`) and exits: 0 when B
finished and the file matches, 1 otherwise. Every wait is bounded by TIMEOUT_S (default 40).
"""
import hashlib, json, os, sys, time

try:
    import libtorrent as lt
except ImportError:
    print("python3-libtorrent is not installed (apt-get install python3-libtorrent)", file=sys.stderr)
    sys.exit(2)

url, work = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 40.0
seed_dir, leech_dir = os.path.join(work, "a"), os.path.join(work, "b")
os.makedirs(seed_dir, exist_ok=True)
os.makedirs(leech_dir, exist_ok=True)
payload = os.urandom(3 * 1024 * 1024 + 12345)
with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
    f.write(payload)

fs = lt.file_storage()
lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
ct = lt.create_torrent(fs, 64 * 1024)
ct.add_tracker(url)
lt.set_piece_hashes(ct, seed_dir)
ti = lt.torrent_info(lt.bencode(ct.generate()))

def session():
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True, "announce_to_all_tiers": True,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification
                      | lt.alert.category_t.status_notification,
    })

def add(ses, path):
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = path
    p.flags &= ~lt.torrent_flags.auto_managed
    p.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(p)

a, b = session(), session()
ha = add(a, seed_dir)
ha.force_recheck()
errors = []
start = time.time()
# The seeder must have checked its data before it announces as a seeder.
while not ha.status().is_seeding and time.time() - start < timeout:
    time.sleep(0.1)
ha.force_reannounce()
hb = add(b, leech_dir)
completed = False
while time.time() - start < timeout:
    for ses in (a, b):
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.tracker_error_alert, lt.scrape_failed_alert)):
                errors.append(alert.message())
    if hb.status().is_seeding:
        completed = True
        break
    time.sleep(0.1)
elapsed = time.time() - start
if completed:
    # Tell the tracker about the completion now rather than at the next interval.
    hb.force_reannounce()
    time.sleep(1.0)
    with open(os.path.join(leech_dir, "payload.bin"), "rb") as f:
        completed = hashlib.sha1(f.read()).digest() == hashlib.sha1(payload).digest()
print(json.dumps({
    "info_hash": str(ti.info_hashes().v1) if hasattr(ti, "info_hashes") else str(ti.info_hash()),
    "completed": completed, "seconds": round(elapsed, 2),
    "a_port": a.listen_port(), "b_port": b.listen_port(), "tracker_errors": errors[:10],
}))
sys.stdout.flush()
if completed:
    sys.stdin.readline()
for ses, h in ((a, ha), (b, hb)):
    ses.remove_torrent(h)
time.sleep(1.5)  # let the `stopped` announces go out before the sessions are torn down
sys.exit(0 if completed else 1)
