"""Trains the toy model (toy.py) and logs its metrics as W&B's would be logged: one JSON object per line, per epoch.

    python train.py --dropout=0.2 --channels_one=16 --channels_two=32 --learning_rate=0.001 --epochs=27
"""

import json

from toy import curve, parse_args

if __name__ == "__main__":
    args = parse_args()
    print(f"training a toy CNN: {vars(args)}")
    for epoch, loss, accuracy, val_loss, val_accuracy in curve(args):
        print(json.dumps({"epoch": epoch, "loss": round(loss, 6), "accuracy": round(accuracy, 6),
                          "val_loss": round(val_loss, 6), "val_accuracy": round(val_accuracy, 6)}))
