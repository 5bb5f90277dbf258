from collections import Counter


def find_gaps(received_seqs):
    counts = Counter(received_seqs)
    highest = max(counts, default=0)
    missing = [seq for seq in range(1, highest + 1) if seq not in counts]
    duplicated = sorted(seq for seq, n in counts.items() if n > 1)
    return missing, duplicated
