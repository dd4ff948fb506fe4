"""A tiny application the example skills work on."""

import statistics


def mean_of(values):
    # TODO: reject an empty list with a clear error
    return statistics.mean(values)


def describe(values):
    return {"n": len(values), "mean": mean_of(values), "max": max(values)}


if __name__ == "__main__":
    print(describe([3, 1, 4, 1, 5, 9, 2, 6]))
