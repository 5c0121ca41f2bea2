"""Writer tag names -> canonical signals, table-driven over the writers we cover."""

import pytest

from lrdoctor.analyzers.tags import map_signals, optimizer_from_tags

CASES = {
    "huggingface_trainer": (
        ["train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss", "eval/accuracy"],
        {
            "loss": "train/loss",
            "lr": "train/learning_rate",
            "grad_norm": "train/grad_norm",
            "val_loss": "eval/loss",
            "val_accuracy": "eval/accuracy",
        },
    ),
    "lightning_two_param_groups": (
        [
            "train_loss_step",
            "train_loss_epoch",
            "val_loss",
            "lr-Adam/pg1",
            "lr-Adam/pg2",
            "grad_2.0_norm_total_step",
            "train_acc_step",
            "val_acc",
            "epoch",
        ],
        {
            "loss": "train_loss_step",
            "val_loss": "val_loss",
            "lr": "lr-Adam/pg1",
            "lr/pg1": "lr-Adam/pg1",
            "lr/pg2": "lr-Adam/pg2",
            "grad_norm": "grad_2.0_norm_total_step",
            "accuracy": "train_acc_step",
            "val_accuracy": "val_acc",
        },
    ),
    "lightning_sgd": (
        ["train_loss", "lr-SGD", "grad_2.0_norm_total", "hp_metric"],
        {"loss": "train_loss", "lr": "lr-SGD", "grad_norm": "grad_2.0_norm_total"},
    ),
    "keras": (
        [
            "batch_loss",
            "epoch_loss",
            "epoch_learning_rate",
            "epoch_accuracy",
            "validation/epoch_loss",
            "validation/epoch_accuracy",
            "validation/evaluation_loss_vs_iterations",
        ],
        {
            "loss": "batch_loss",
            "lr": "epoch_learning_rate",
            "accuracy": "epoch_accuracy",
            "val_loss": "validation/epoch_loss",
            "val_accuracy": "validation/epoch_accuracy",
        },
    ),
    "torch_tutorial": (
        ["Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test", "LR"],
        {
            "loss": "Loss/train",
            "val_loss": "Loss/test",
            "accuracy": "Accuracy/train",
            "val_accuracy": "Accuracy/test",
            "lr": "LR",
        },
    ),
    "torch_plain": (["loss", "lr", "weights/norm"], {"loss": "loss", "lr": "lr"}),
    "ours_two_groups": (
        [
            "lrdoctor/loss",
            "lrdoctor/val_loss",
            "lrdoctor/grad_norm",
            "lrdoctor/grad_norm/fc1",
            "lrdoctor/lr/pg0",
            "lrdoctor/lr/pg1",
            "lrdoctor/accuracy",
            "lrdoctor/val_accuracy",
            "lrdoctor/extra/temperature",
        ],
        {
            "loss": "lrdoctor/loss",
            "val_loss": "lrdoctor/val_loss",
            "grad_norm": "lrdoctor/grad_norm",
            "lr": "lrdoctor/lr/pg0",
            "lr/pg0": "lrdoctor/lr/pg0",
            "lr/pg1": "lrdoctor/lr/pg1",
            "accuracy": "lrdoctor/accuracy",
            "val_accuracy": "lrdoctor/val_accuracy",
        },
    ),
    "ours_one_group": (
        ["lrdoctor/loss", "lrdoctor/lr/pg0"],
        {"loss": "lrdoctor/loss", "lr": "lrdoctor/lr/pg0"},
    ),
    "nothing_known": (["episode/Return", "metrics/mAP50(B)"], {}),
    "last_resort_loss_tags": (
        ["train/box_loss", "train/cls_loss", "val/box_loss", "metrics/mAP50(B)"],
        {"loss": "train/box_loss", "val_loss": "val/box_loss"},
    ),
    "last_resort_never_takes_a_held_out_split_as_training_loss": (
        ["data/test_loss", "episode/MSE Loss", "my_val_loss_smooth"],
        {"loss": "episode/MSE Loss", "val_loss": "data/test_loss"},
    ),
    "empty": ([], {}),
}


@pytest.mark.parametrize("writer", list(CASES))
def test_map_signals(writer):
    tags, expected = CASES[writer]
    assert map_signals(tags) == expected
    assert map_signals(reversed(tags)) == expected  # tag order does not matter


@pytest.mark.parametrize(
    ("tags", "optimizer"),
    [
        (["lr-Adam/pg1", "lr-Adam/pg2"], "Adam"),
        (["lr-SGD"], "SGD"),
        (["lr-AdamW_step"], "AdamW"),
        (["lr", "loss"], None),
        (["train/learning_rate"], None),
    ],
)
def test_optimizer_from_tags(tags, optimizer):
    assert optimizer_from_tags(tags) == optimizer


def test_user_override_wins_and_unknown_tag_is_ignored():
    tags = ["loss", "my/custom_loss", "lr"]
    assert map_signals(tags, {"loss": "my/custom_loss"})["loss"] == "my/custom_loss"
    assert map_signals(tags, {"loss": "not/there"})["loss"] == "loss"
    assert map_signals(tags, {"grad_norm": "my/custom_loss"})["grad_norm"] == "my/custom_loss"


def test_case_is_ignored():
    assert map_signals(["Train/Loss", "LEARNING_RATE"]) == {"loss": "Train/Loss", "lr": "LEARNING_RATE"}
