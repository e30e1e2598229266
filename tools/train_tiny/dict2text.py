#!/usr/bin/env python3
"""Turns dictionaries into plain prose lines, one paragraph a line.

    dict2text.py dictd FILE.dict.dz FILE.index   # a dictd database (dict-devil, dict-jargon)
    dict2text.py wordnet DIR                     # WordNet glosses ("words: gloss"), DIR/data.{noun,verb,adj,adv}

dictd entries are cut out of the uncompressed text by the offsets of the
index; the database's own entries (00-database-*, 00database*) are dropped.
Wrapped lines are joined, blank lines end a paragraph, and the Jargon File's
cross-reference braces ({foo} → foo) are removed. Standard library only.
"""

import gzip
import os
import re
import sys

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def paragraphs(entry):
    for para in re.split(r"\n\s*\n", entry):
        line = " ".join(para.split())
        line = re.sub(r"\{([^{}]*)\}", r"\1", line).replace(" }", "}")
        if line:
            yield line


def dictd(dz, index):
    data = gzip.open(dz).read()
    seen = set()
    with open(index, encoding="utf-8") as f:
        for row in f:
            parts = row.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00database") or parts[0].startswith("00-database"):
                continue
            off, size = b64(parts[1]), b64(parts[2])
            if (off, size) in seen:  # several headwords share an entry
                continue
            seen.add((off, size))
            entry = data[off: off + size].decode("utf-8", "replace")
            if entry.startswith("00-database"):
                continue
            yield from paragraphs(entry)


def wordnet(folder):
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(folder, "data." + pos), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the licence header
                head, gloss = line.split("|", 1)
                fields = head.split()
                count = int(fields[3], 16)
                words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
                words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]
                yield f"{', '.join(words)}: {gloss.strip()}"


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "dictd":
        lines = dictd(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "wordnet":
        lines = wordnet(sys.argv[2])
    else:
        sys.exit(__doc__)
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")


if __name__ == "__main__":
    main()
