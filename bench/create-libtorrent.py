#!/usr/bin/python3
"""libtorrent's side of bench/create.sh: make a v1 torrent of one file or folder with
python3-libtorrent (file_storage + add_files + create_torrent + set_piece_hashes + bencode).

usage: /usr/bin/python3 bench/create-libtorrent.py PATH OUT PIECE_BYTES
"""
import os
import sys

import libtorrent as lt


def main():
    path, out, piece = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1_only: libtorrent 2.0 makes hybrid v1+v2 torrents by default.
    t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(t, os.path.dirname(path))
    with open(out, "wb") as f:
        f.write(lt.bencode(t.generate()))


if __name__ == "__main__":
    main()
