def clamp(x, lo, hi):
    # TODO: handle lo > hi
    return max(lo, min(x, hi))
