"""Broken data files for the bad-input proof: image folders, CSV tables and tensor files.

`make_cases(root)` writes each case under root and returns (name, overrides, expected words): the
overrides select the data source; the words must appear in the one-line refusal.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch
from PIL import Image


def _png(path: Path, size: tuple[int, int] = (8, 8), color: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (color, 0, 0)).save(path)


def _folder(d: Path, classes: tuple[str, ...] = ("cat", "dog"), n: int = 5) -> Path:
    for c in classes:
        for i in range(n):
            _png(d / c / f"{i}.png", color=i * 30)
    return d


def _encoded(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, fmt)
    return buf.getvalue()


class _Payload:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run code
        return (os.system, ("echo should-not-run",))


BAD_BYTES = {  # file content -> the words of the refusal
    "corrupt.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not an image file"),
    "zero.png": (b"", "an empty file"),
    "text.png": (b"this is text, not a picture\n", "not an image file"),
    "html.jpg": (b"<html><body>404</body></html>", "not an image file"),
    "one_byte.png": (b"\x89", "not an image file"),
    "random.jpg": (bytes((i * 37) % 256 for i in range(512)), "not an image file"),
    "trunc.png": (None, "corrupt or truncated"),
    "trunc_idat.png": (None, "corrupt or truncated"),
    "trunc.jpg": (None, "bad image"),
    "junk.webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(16), "bad image"),
    "trunc.bmp": (None, "bad image"),
    "bad_crc.png": (None, "corrupt or truncated"),
    "junk.tiff": (b"II*\x00" + bytes(40), "bad image"),
}


def _bad_bytes(name: str) -> bytes:
    content = BAD_BYTES[name][0]
    if content is not None:
        return content
    if name == "trunc.png":
        return _encoded("PNG")[:60]
    if name == "trunc_idat.png":
        data = _encoded("PNG", (128, 128))
        return data[: len(data) - 30]
    if name == "trunc.bmp":
        return _encoded("BMP", (32, 32))[:200]
    if name == "bad_crc.png":
        data = bytearray(_encoded("PNG", (32, 32)))
        i = data.index(b"IDAT") + 8
        data[i] ^= 0xFF  # one flipped byte: the chunk's CRC no longer matches
        return bytes(data)
    return _encoded("JPEG", (256, 256))[:400]  # trunc.jpg: the header verifies, the pixels do not decode


def make_cases(root: Path) -> list[tuple[str, list[str], str]]:
    cases: list[tuple[str, list[str], str]] = []

    def images(name: str, words: str, build, extra: tuple[str, ...] = ()) -> None:  # noqa: ANN001
        d = root / "img" / name
        build(d)
        for loader in ("memory", "dataloader"):
            cases.append((f"img-{name}-{loader}", ["data=image_folder", f"data.root={d}", f"data.loader={loader}",
                                                   "data.transforms.train=[{_target_: torchvision.transforms.ToTensor}]",
                                                   "data.transforms.eval=[{_target_: torchvision.transforms.ToTensor}]",
                                                   *extra], words))

    for fname, (_, words) in BAD_BYTES.items():
        def build(d: Path, fname: str = fname) -> None:
            _folder(d)
            (d / "cat" / fname).write_bytes(_bad_bytes(fname))

        images(fname.replace(".", "_"), words, build)
    images("dangling", "a dangling symlink", lambda d: (_folder(d), os.symlink(d / "nothing.png", d / "cat" / "dl.png")))
    images("bomb", "decompression bomb", lambda d: (_folder(d), Image.new("1", (20000, 20000)).save(d / "cat" / "bomb.png")))
    images("loop", "symlink loop", lambda d: (_folder(d), os.symlink("..", d / "cat" / "loop")))
    images("self_loop", "symlink loop", lambda d: (_folder(d), os.symlink(".", d / "cat" / "here")))
    images("dup_file", "are the same file", lambda d: (_folder(d), os.symlink(d / "cat" / "0.png", d / "dog" / "copy.png")))
    images("dup_dir", "a second time", lambda d: (_folder(d), os.symlink(d / "cat", d / "dog" / "again")))
    images("bad_in_test", "bad image",
           lambda d: (_folder(d / "train"), _folder(d / "test"), (d / "test" / "dog" / "x.png").write_bytes(b"")))
    images("classes_differ", "has classes", lambda d: (_folder(d / "train"), _folder(d / "test", ("cat", "cow"))))
    images("no_images", "no images", lambda d: (d / "cat").mkdir(parents=True))
    images("two_bad", "and 1 more", lambda d: (_folder(d), (d / "cat" / "a.png").write_bytes(b""), (d / "dog" / "b.png").write_bytes(b"x")))
    (root / "img" / "afile").parent.mkdir(parents=True, exist_ok=True)
    (root / "img" / "afile").write_text("x")
    cases.append(("img-root-is-file", ["data=image_folder", f"data.root={root / 'img' / 'afile'}"], "is a file"))
    cases.append(("img-root-missing", ["data=image_folder", f"data.root={root / 'img' / 'nowhere'}"], "does not exist"))

    def table(name: str, text: str, words: str, *extra: str) -> None:
        p = root / "csv" / f"{name}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        cases.append((f"csv-{name}", ["data=csv", f"data.path={p}", *extra], words))

    good = "a,b,label\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(30))
    table("label_index_4", good, "out of range", "data.label_column=4")
    table("label_index_7", good, "out of range", "data.label_column=7")
    table("label_index_neg5", good, "out of range", "data.label_column=-5")
    table("label_index_neg1", good, "out of range", "data.label_column=-1")
    table("label_name_missing", good, "is not a column", "data.label_column=target")
    table("only_label", "label\n" + "1\n0\n" * 10, "at least one feature column")
    table("wrong_delimiter", good.replace(",", ";"), "at least one feature column")
    table("header_only", "a,b,label\n", "header row and at least one data row")
    table("empty", "", "header row and at least one data row")
    table("columns_not_in_file", good, "which is not a feature column", "data.columns={zzz: numeric}")
    table("text_in_numeric_column", "a,b,label\n" + "".join(f"{i},{'x' if i == 3 else i},{i % 2}\n" for i in range(30)),
          "column 'b' is numeric but row", "data.columns={b: numeric}")
    table("ragged_row", "a,b,label\n1,2,0\n1,2\n", "has 2 fields")
    table("extra_field", "a,b,label\n1,2,0\n1,2,3,4\n", "has 4 fields")
    table("float_labels_classification", "a,b,label\n" + "".join(f"{i},{i},{i / 7:.3f}\n" for i in range(20)),
          "needs integer class labels")
    table("label_type_bogus", good, "must be auto, class or real", "data.label_type=maybe")
    table("real_with_text", "a,b,label\n1,2,x\n3,4,y\n", "holds text", "data.label_type=real", "task=regression", "loss=mse")
    table("bom_header", "\ufefflabel,a,b\n1,2,3\n0,5,6\n", "is not a column")
    table("label_index_huge", good, "out of range", "data.label_column=1000000")
    table("nan_label", "a,b,label\n1,2,0\n3,4,nan\n5,6,1\n", "the label is nan")
    table("inf_label", "a,b,label\n1,2,0\n3,4,inf\n5,6,1\n", "the label is inf")
    table("empty_label", "a,b,label\n1,2,0\n3,4,\n5,6,1\n", "the label is empty")

    def tensors(name: str, blob, words: str, *extra: str, raw: bytes | None = None) -> None:  # noqa: ANN001
        p = root / "pt" / f"{name}.pt"
        p.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            p.write_bytes(raw)
        else:
            torch.save(blob, p)
        cases.append((f"pt-{name}", ["data=tensor_file", f"data.path={p}", *extra], words))

    x, y = torch.randn(40, 4), torch.arange(40) % 3
    tensors("complex_x", {"x": torch.randn(40, 4, dtype=torch.complex64), "y": y}, "is complex")
    tensors("complex_y", {"x": x, "y": torch.randn(40, dtype=torch.complex64)}, "is complex")
    tensors("float_labels", {"x": x, "y": torch.rand(40)}, "needs integer class labels")
    tensors("list_not_dict", [x, y], "must hold a dict")
    tensors("no_y", {"x": x}, "must hold a dict")
    tensors("x_not_tensor", {"x": [[1.0]] * 40, "y": y}, "must both be tensors")
    tensors("length_mismatch", {"x": x, "y": y[:30]}, "they must match")
    tensors("label_only_in_test", {"x": x, "y": y, "x_test": x[:5], "y_test": torch.tensor([0, 1, 2, 7, 7])},
            "that the training split never has")
    tensors("label_only_in_val", {"x": x, "y": y, "x_val": x[:4], "y_val": torch.tensor([0, 5, 1, 2])},
            "that the training split never has")
    tensors("x_val_without_y", {"x": x, "y": y, "x_val": x[:4]}, "must both be tensors")
    tensors("y_test_without_x", {"x": x, "y": y, "y_test": y[:4]}, "must both be tensors")
    tensors("not_torch", None, "is not a torch.save file", raw=b"just some text\n")
    tensors("zero_bytes", None, "is not a torch.save file", raw=b"")
    tensors("truncated", None, "is not a torch.save file", raw=_saved({"x": x, "y": y})[:100])
    tensors("pickled_code", None, "is not a torch.save file", raw=pickle.dumps({"x": _Payload(), "y": 1}))
    tensors("nan_inputs", {"x": torch.full((40, 4), float("nan")), "y": y}, "NaN")
    tensors("empty_tensors", {"x": torch.zeros(0, 4), "y": torch.zeros(0, dtype=torch.long)}, "empty")
    (root / "pt" / "adir.pt").mkdir(parents=True, exist_ok=True)
    cases.append(("pt-is-directory", ["data=tensor_file", f"data.path={root / 'pt' / 'adir.pt'}"], "is a directory"))
    cases.append(("pt-missing", ["data=tensor_file", f"data.path={root / 'pt' / 'nothing.pt'}"], "does not exist"))
    return cases


def _saved(blob: object) -> bytes:
    buf = io.BytesIO()
    torch.save(blob, buf)
    return buf.getvalue()
