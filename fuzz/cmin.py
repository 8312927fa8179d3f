#!/usr/bin/env python3
"""Cuts a libFuzzer corpus to at most N files, in place: a greedy cover of the edges the corpus
reaches (libFuzzer's merge control file, counters off), largest gain first. Inputs not named by
their SHA-1 (real files, crash regressions) are always kept.

Usage: fuzz/cmin.py TARGET_BINARY CORPUS_DIR N
(the binary: <target-dir>/x86_64-unknown-linux-gnu/release/<target>, built by `cargo fuzz build -O`)"""
import os, re, subprocess, sys, tempfile, shutil
binary, corpus, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctl = tempfile.mktemp(prefix='ctl-', dir='/var/tmp')
out = tempfile.mkdtemp(prefix='merge-', dir='/var/tmp')
subprocess.run([binary, '-merge=1', '-use_counters=0', '-rss_limit_mb=4096', f'-merge_control_file={ctl}', out, corpus],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
lines = open(ctl).read().split('\n')
n = int(lines[0]); files = lines[2:2 + n]
cov = {}
for line in lines[2 + n:]:
    if line.startswith('COV '):
        parts = line.split(); cov[int(parts[1])] = set(parts[2:])
named = lambda p: not re.fullmatch(r'[0-9a-f]{40}', os.path.basename(p))
keep = [i for i in range(n) if named(files[i])]
covered = set().union(*(cov.get(i, set()) for i in keep)) if keep else set()
total = set().union(*cov.values())
while len(keep) < limit:
    best, gain = None, 0
    for i, c in cov.items():
        g = len(c - covered)
        if g > gain or (g == gain and g > 0 and best is not None and os.path.getsize(files[i]) < os.path.getsize(files[best])):
            best, gain = i, g
    if not gain:
        break
    keep.append(best); covered |= cov[best]
keepset = {files[i] for i in keep}
for f in os.listdir(corpus):
    p = os.path.join(corpus, f)
    if p not in keepset and os.path.abspath(p) not in keepset:
        os.remove(p)
shutil.rmtree(out); os.remove(ctl)
print(f'kept {len(keep)} of {n} files, {len(covered)} of {len(total)} edges')
