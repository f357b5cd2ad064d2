#!/usr/bin/python3
"""Optuna's samplers on the functions of `bench/Sweeper.Bench -- samplers`, printing lines of the same shape.

Branin and Hartmann-6, S seeds (default 30) of a sequential study of N trials (default 100), with Optuna's default
TPESampler (and with multivariate=True) and its RandomSampler; one JSON line per function and sampler with the median and mean of the best value.
Quality, not speed. Needs Optuna (Debian: apt-get install python3-optuna).

    /usr/bin/python3 bench/optuna_compare.py [--seeds 30] [--trials 100] [--fix-logpdf]

--fix-logpdf: Optuna before 3.5 (Debian ships 3.1) left log(scale) out of its truncated normal's log density, so each
TPE kernel's density came out multiplied by its width; 3.5 fixed that (commit 206e719, "Fix logpdf for scaled
truncnorm"). With this flag the script puts the fixed function in place, to compare with what Optuna does today.
"""
import argparse
import json
import math
import statistics

import warnings

import optuna

BRANIN_MIN = 0.39788735772973816
HARTMANN6_MIN = -3.3223680114155147

HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
HARTMANN_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def branin(x):
    b = 5.1 / (4 * math.pi ** 2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    u = x[1] - b * x[0] ** 2 + c * x[0] - 6
    return u * u + 10 * (1 - t) * math.cos(x[0]) + 10


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6))
        total += HARTMANN_ALPHA[i] * math.exp(-inner)
    return -total


FUNCTIONS = [
    ("branin", [(-5.0, 10.0), (0.0, 15.0)], BRANIN_MIN, branin),
    ("hartmann6", [(0.0, 1.0)] * 6, HARTMANN6_MIN, hartmann6),
]


def fix_logpdf():
    """Optuna < 3.5's _truncnorm.logpdf with the log(scale) term it lacked."""
    import numpy as np
    from optuna.samplers._tpe import _truncnorm

    original = _truncnorm.logpdf

    def logpdf(x, a, b, loc=0, scale=1):
        return original(x, a, b, loc=loc, scale=scale) - np.log(scale)

    _truncnorm.logpdf = logpdf


def best_value(sampler, box, f, trials):
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def objective(trial):
        return f([trial.suggest_float(f"x{i}", low, high) for i, (low, high) in enumerate(box)])

    study.optimize(objective, n_trials=trials)
    return study.best_value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--fix-logpdf", action="store_true", help="put Optuna 3.5's fixed truncated-normal log density in place")
    args = parser.parse_args()
    implementation = f"optuna {optuna.__version__}"
    if args.fix_logpdf and tuple(int(p) for p in optuna.__version__.split(".")[:2]) < (3, 5):
        fix_logpdf()
        implementation += " with 3.5's logpdf fix"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate is experimental in Optuna 3
    samplers = [
        ("random", lambda seed: optuna.samplers.RandomSampler(seed=seed)),
        ("tpe", lambda seed: optuna.samplers.TPESampler(seed=seed)),
        ("tpe_multivariate", lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True)),
    ]
    for name, box, minimum, f in FUNCTIONS:
        for sampler_name, make in samplers:
            values = [best_value(make(seed), box, f, args.trials) for seed in range(args.seeds)]
            print(json.dumps({
                "bench": "samplers",
                "function": name,
                "sampler": sampler_name,
                "implementation": implementation,
                "seeds": args.seeds,
                "trials": args.trials,
                "optimum": minimum,
                "median_best": round(statistics.median(values), 6),
                "mean_best": round(statistics.fmean(values), 6),
                "worst_best": round(max(values), 6),
            }), flush=True)


if __name__ == "__main__":
    main()
