"""A cheap, deterministic stand-in for W&B's pytorch-cnn-fashion model: no data, no numpy, only arithmetic.

Its accuracy depends on the parameters the way a small CNN's roughly does: more channels help (with diminishing
returns), a learning rate near 0.001 learns best, dropout around 0.3 regularizes best, and every epoch gets closer
to the parameters' final accuracy. A little noise, seeded by the parameters, makes it look like training while
keeping every run of the same parameters identical (a restarted trial reports the same curve again).
"""

import argparse
import math
import random
import zlib


def parse_args():
    parser = argparse.ArgumentParser(description="Toy fashion-MNIST CNN: the arguments of W&B's example")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--channels_one", type=int, default=16)
    parser.add_argument("--channels_two", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=10)
    return parser.parse_args()


def curve(args):
    """Yields (epoch, loss, accuracy, val_loss, val_accuracy) for every epoch."""
    capacity = 1 - math.exp(-(args.channels_one * args.channels_two) / 250.0)
    rate_fit = math.exp(-((math.log10(args.learning_rate) + 3.0) ** 2) / 0.6)
    dropout_fit = max(0.0, 1 - 2.5 * (args.dropout - 0.3) ** 2)
    final = 0.55 + 0.38 * capacity * rate_fit * dropout_fit
    speed = 0.08 + 40 * min(args.learning_rate, 0.005)
    key = f"{args.dropout}|{args.channels_one}|{args.channels_two}|{args.learning_rate}"
    noise = random.Random(zlib.crc32(key.encode()))
    for epoch in range(1, args.epochs + 1):
        progress = 1 - math.exp(-speed * epoch)
        accuracy = 0.1 + (final - 0.1) * progress + noise.gauss(0, 0.004)
        val_accuracy = accuracy - 0.02 - 0.04 * (1 - args.dropout) * progress + noise.gauss(0, 0.004)
        loss = -math.log(min(max(accuracy, 0.01), 0.999)) * 1.4
        val_loss = -math.log(min(max(val_accuracy, 0.01), 0.999)) * 1.4
        yield epoch, loss, accuracy, val_loss, val_accuracy
