#!/usr/bin/env python3
"""Makes a long synthetic shard for the merge bench: a real short run's results
directory (one interval: histograms.hlog's five histogram lines, timeline.csv's row)
repeated INTERVALS times at INTERVAL_S seconds each, with summary.json's duration, load
duration, attempts and load.interval set to match, so that `portlab merge` reads it as a run
of INTERVALS x INTERVAL_S seconds. Every interval holds the source's first interval's
histograms: the merged histograms are exact sums, checkable by count.

usage: long_shards.py SRC_RUN_DIR DST_DIR INTERVALS INTERVAL_S"""
import csv, json, os, sys

src, dst, n, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
os.makedirs(dst, exist_ok=True)
head, first = [], []
with open(os.path.join(src, "histograms.hlog")) as f:
    for line in f:
        if line.startswith("Tag="):
            fields = line.split(",", 4)
            if first and fields[1] != first[0][1]:
                break
            first.append(fields)
        elif not first:
            head.append(line)
with open(os.path.join(dst, "histograms.hlog"), "w") as out:
    out.writelines(head)
    for k in range(n):
        for tag, _, _, mx, enc in first:
            out.write(f"{tag},{k * step:.3f},{step:.3f},{mx},{enc}")
rows = list(csv.reader(open(os.path.join(src, "timeline.csv"))))
header, row = rows[0], rows[1]
per = int(row[header.index("attempts")])
with open(os.path.join(dst, "timeline.csv"), "w", newline="") as out:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for k in range(n):
        row[0] = f"{(k + 1) * step:.3f}"
        w.writerow(row)
s = json.load(open(os.path.join(src, "summary.json")))
s["duration_s"] = s["load_duration_s"] = n * step
s["attempts"] = per * n
s["plan"]["load"]["interval"] = f"{round(step * 1000)}ms"
json.dump(s, open(os.path.join(dst, "summary.json"), "w"), indent=2)
