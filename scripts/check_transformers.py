#!/usr/bin/env python3
"""Checks that Hugging Face transformers scores a model directory written by `social-reward
train` (its OUT/model) as `social-reward score` does.

    python3 -m pip install torch transformers pillow
    scripts/check_transformers.py MODEL_DIR [IMAGE ...] [--prompt P] [--binary PATH]

The binary comes from --binary, else $SOCIAL_REWARD_BIN, else `social-reward` on PATH. Without
images, a few synthetic pictures are drawn. Exit status 1 when any |difference| exceeds
--tolerance (1e-4), or when either side fails on an image.

Each image is first brought to the model's input size the way `social-reward` does it (shortest
side to the size, bicubic, centre crop; src/train/preprocess.rs) and saved as PNG; both sides
then read that same file, so that what is compared is the model (weights, config.json, token
ids, pooling) and not two implementations of bicubic resampling. The last columns show, for
information only, `score` on the original picture beside transformers' own image processor
(preprocessor_config.json) on it: close, not identical, as PIL's bicubic differs from ours by a
few levels here and there and transformers crops an odd margin one pixel differently.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPModel

START = "<|startoftext|>"
END = "<|endoftext|>"


def fail(message):
    print(f"check_transformers: {message}", file=sys.stderr)
    sys.exit(2)


def round_half_away(x):
    """Rust's f64::round, which the Rust preprocessing uses (Python's round() is banker's)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def to_model_size(image, size):
    """src/train/preprocess.rs `clip_pixels`, up to the normalisation."""
    image = image.convert("RGB")
    width, height = image.size
    if width <= height:
        new_w, new_h = size, max(round_half_away(size * height / width), size)
    else:
        new_w, new_h = max(round_half_away(size * width / height), size), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left = round_half_away((new_w - size) / 2)
    top = round_half_away((new_h - size) / 2)
    return image.crop((left, top, left + size, top + size))


def pixel_values(image, mean, std):
    """The normalisation of `clip_pixels`, in f32 like it: (v / 255 - mean) / std, channel-first."""
    array = np.asarray(image, dtype=np.uint8).astype(np.float32)
    array = (array / np.float32(255.0) - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def prompt_ids(tokenizer_file, prompt, max_tokens):
    """src/train/tokenize.rs `PromptTokenizer::ids` on the directory's tokenizer.json."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    start, end = tokenizer.token_to_id(START), tokenizer.token_to_id(END)
    if end is None:
        fail(f"{tokenizer_file} has no {END} token")
    ids = tokenizer.encode(prompt).ids
    if start is not None and (not ids or ids[0] != start):
        ids.insert(0, start)
    if not ids or ids[-1] != end:
        ids.append(end)
    if len(ids) > max_tokens:
        ids = ids[: max_tokens - 1] + [end]
    return ids


def transformers_tokenizer_ids(model_dir, prompt):
    """What transformers' own loaders make of the directory's tokenizer, for the table."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    return tokenizer(prompt)["input_ids"]


def features(output):
    """transformers 5 returns a model output whose pooler_output is projected; 4.x a tensor."""
    tensor = getattr(output, "pooler_output", output)
    return tensor / tensor.norm(dim=-1, keepdim=True)


def synthetic_images(folder):
    rng = np.random.default_rng(7)
    pictures = {
        "gradient_96x64.png": np.dstack(
            [*np.meshgrid(np.linspace(0, 255, 96), np.linspace(255, 0, 64)), np.full((64, 96), 90.0)]
        ),
        "noise_50x80.png": rng.integers(0, 256, (80, 50, 3)),
        "blocks_64x64.png": np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((16, 16, 1))),
        "stripes_333x211.png": np.dstack(
            [(np.arange(333)[None, :] * np.ones((211, 1)) * 7 % 256)] * 2
            + [np.full((211, 333), 30.0)]
        ),
    }
    paths = []
    for name, array in pictures.items():
        path = folder / name
        Image.fromarray(array.astype(np.uint8), "RGB").save(path)
        paths.append(path)
    return paths


def score_with_binary(binary, model_dir, prompt, paths):
    command = [binary, "--quiet", "score", "--model", str(model_dir), "--prompt", prompt]
    command += [str(p) for p in paths]
    try:
        run = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        fail(f"no binary {binary!r}: pass --binary or set SOCIAL_REWARD_BIN")
    if run.returncode != 0:
        fail(f"{' '.join(command)} failed:\n{run.stderr}")
    scores = {}
    for line in run.stdout.splitlines():
        row = json.loads(line)
        scores[row["image"]] = row["score"]
    return scores


def processor_scores(model_dir, model, text, originals):
    """transformers' image processor from preprocessor_config.json, on the original pictures."""
    try:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(str(model_dir))
        out = []
        for path in originals:
            batch = processor(images=Image.open(path).convert("RGB"), return_tensors="pt")
            with torch.no_grad():
                image = features(model.get_image_features(pixel_values=batch["pixel_values"]))
            out.append(float((text * image).sum()))
        return type(processor).__name__, out
    except Exception as error:  # informational column only: report and go on
        return f"unavailable ({type(error).__name__}: {error})", [None] * len(originals)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("--prompt", default="a watercolor painting of a red fox")
    parser.add_argument(
        "--binary", default=os.environ.get("SOCIAL_REWARD_BIN", "social-reward")
    )
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_intermixed_args()

    model_dir = args.model_dir
    if not (model_dir / "config.json").is_file() and (model_dir / "model" / "config.json").is_file():
        model_dir = model_dir / "model"  # train's OUT, as `score` itself accepts
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        fail(f"{args.model_dir} has no config.json (pass train's OUT or OUT/model)")
    config = json.loads(config_file.read_text())
    text_config, vision_config = config.get("text_config", {}), config.get("vision_config", {})
    size = vision_config.get("image_size", 224)
    max_tokens = min(text_config.get("max_position_embeddings", 77), 77)
    missing = [k for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k not in text_config]
    if missing:
        print(f"warning: config.json text_config lacks {', '.join(missing)}: transformers "
              "falls back to CLIP's ids (49406/49407), which this vocabulary may not use")

    # src/train/preprocess.rs CLIP_MEAN and CLIP_STD, as `train` writes them (f32, exactly).
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.2613026, 0.2757771)
    preprocessor_file = model_dir / "preprocessor_config.json"
    if preprocessor_file.is_file():
        preprocessor = json.loads(preprocessor_file.read_text())
        mean, std = preprocessor.get("image_mean", mean), preprocessor.get("image_std", std)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        originals = args.images or synthetic_images(scratch)
        for path in originals:
            if not path.is_file():
                fail(f"no image {path}")
        cropped = []
        for index, path in enumerate(originals):
            target = scratch / f"{index:03}_{path.stem}_{size}.png"
            to_model_size(Image.open(path), size).save(target)
            cropped.append(target)

        ours = score_with_binary(args.binary, args.model_dir, args.prompt, cropped + originals)

        model = CLIPModel.from_pretrained(str(model_dir)).eval()
        ids = prompt_ids(model_dir / "tokenizer.json", args.prompt, max_tokens)
        hf_ids = transformers_tokenizer_ids(model_dir, args.prompt)
        with torch.no_grad():
            text = features(model.get_text_features(input_ids=torch.tensor([ids])))
            theirs = []
            for path in cropped:
                image = features(
                    model.get_image_features(
                        pixel_values=pixel_values(Image.open(path).convert("RGB"), mean, std)
                    )
                )
                theirs.append(float((text * image).sum()))
        processor_name, via_processor = processor_scores(model_dir, model, text, originals)

    pooling = ("argmax (legacy eos_token_id 2)" if model.config.text_config.eos_token_id == 2
               else f"first eos_token_id {model.config.text_config.eos_token_id}")
    print(f"model      {model_dir}")
    print(f"prompt     {args.prompt!r}: ids {ids}")
    print(f"           transformers' PreTrainedTokenizerFast: "
          f"{'same ids' if hf_ids == ids else f'DIFFERENT ids {hf_ids}'}")
    print(f"pooling    {pooling}")
    print(f"processor  {processor_name}")
    print()
    print(f"{'':<28} {'same pixels':^40} | {'original picture, own preprocessing':^38}")
    header = f"{'image':<28} {'social-reward':>14} {'transformers':>14} {'|diff|':>10}"
    print(header + f" | {'social-reward':>14} {'processor':>11} {'|diff|':>10}")
    worst, failures = 0.0, 0
    for path, cropped_path, theirs_score, proc in zip(originals, cropped, theirs, via_processor):
        ours_score = ours.get(str(cropped_path))
        name = path.name if len(path.name) <= 28 else "…" + path.name[-27:]
        if ours_score is None:
            failures += 1
            print(f"{name:<28} {'failed':>14} {theirs_score:>14.7f}")
            continue
        diff = abs(ours_score - theirs_score)
        worst = max(worst, diff)
        original = ours.get(str(path))
        proc_cols = (f" | {original:>14.7f} {proc:>11.7f} {abs(original - proc):>10.2e}"
                     if proc is not None and original is not None
                     else f" | {'-':>14} {'-':>11} {'-':>10}")
        flag = "  <-- over tolerance" if diff > args.tolerance else ""
        print(f"{name:<28} {ours_score:>14.7f} {theirs_score:>14.7f} {diff:>10.2e}{proc_cols}{flag}")
    print()
    print(f"max |diff| {worst:.2e} (tolerance {args.tolerance:g}) over {len(originals)} images")
    if failures or worst > args.tolerance or hf_ids != ids:
        print("FAIL")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
