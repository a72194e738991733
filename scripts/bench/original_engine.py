#!/usr/bin/env python3
"""The original BinaryAlert's engine path (2017, Python), the bench's anchor: for every file under
a directory, one at a time, SHA-256 and MD5 over 2 MB chunks with hashlib (lambda_functions/
analyzer/file_hash.py), then yara-python `match` on the path with the filename/filepath/extension/
filetype externals (yara_analyzer.py), over the same compiled rules. Prints `rule path` per match.

usage: original_engine.py COMPILED_RULES DIRECTORY
"""
import hashlib
import os
import sys

import yara

CHUNK_BYTES = 2 * 1024 * 1024


def file_hashes(path):
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                break
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def externals(path):
    filename = os.path.basename(path)
    extension = os.path.splitext(filename)[1]
    return {
        'filename': filename,
        'filepath': path,
        'extension': extension,
        'filetype': extension[1:].upper(),
    }


def main():
    rules = yara.load(sys.argv[1])
    out = []
    for root, dirs, files in os.walk(sys.argv[2]):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            file_hashes(path)
            for match in rules.match(path, externals=externals(path)):
                out.append('%s %s\n' % (match.rule, path))
    sys.stdout.write(''.join(out))


if __name__ == '__main__':
    main()
