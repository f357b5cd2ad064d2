"""Trains the toy model (toy.py) and prints its metrics as name=value pairs, as Katib's stdout collector reads them.

    python train_keyvalue.py --dropout=0.2 --channels_one=16 --channels_two=32 --learning_rate=0.001 --epochs=27
"""

from toy import curve, parse_args

if __name__ == "__main__":
    args = parse_args()
    print(f"training a toy CNN with dropout {args.dropout}")
    for epoch, loss, accuracy, val_loss, val_accuracy in curve(args):
        print(f"epoch={epoch} loss={loss:.6f} accuracy={accuracy:.6f} val_loss={val_loss:.6f} val_accuracy={val_accuracy:.6f}")
