import math


def percentile(values, p):
    """The p-th percentile, linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)  # a copy: never reorder the caller's list
    rank = (len(ordered) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)  # p100: stay on the last value
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
