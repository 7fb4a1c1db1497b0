"""Disk taken by a cell's prediction files (issue 22), written by the tasks' own writers.

* The default run: the four tasks' files for every split they evaluate, on the
  default experiment's world (``configs/default.yaml``, its task options), with
  placeholder predictions of the real shapes: VQA the records' most common answer,
  grounding each expression's first proposal, NLVR2 ``True``, retrieval random ITC
  similarities whose top-k candidates (both directions) get random ITM scores and
  all other pairs -100, as ``tasks.rerank`` ranks them.  File sizes depend on the
  shapes; only the retrieval ``.npz`` depends on the values (random float32 barely
  compresses, nor do real scores).
* A COCO-size retrieval cell: 5,000 images x 25,000 captions, k = 256, written
  by ``tasks.retrieval.score_files_of`` (sparse ``.npz`` of both directions with the
  candidates' ITC similarities), timed, read back dense and compared bit for bit,
  and scored (``itm_eval``) from the files.

``--quick`` shrinks the COCO cell to 500 x 2,500 (numbers meaningless).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def reranked(rng: np.random.Generator, n_img: int, n_txt: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sims, s_i2t, s_t2i)``: random ITC similarities and the ITM-re-ranked matrices."""
    sims = rng.standard_normal((n_img, n_txt), dtype=np.float32)
    out = []
    for matrix in (sims, sims.T):
        top = np.argpartition(-matrix, min(k, matrix.shape[1]) - 1, axis=1)[:, :k]
        scored = np.full(matrix.shape, -100.0, dtype=np.float32)
        np.put_along_axis(scored, top, rng.standard_normal(top.shape, dtype=np.float32), axis=1)
        out.append(scored)
    return sims, out[0], out[1]


def default_run(rng: np.random.Generator) -> list[dict]:
    """One row per task: its files on the default world and their bytes."""
    from simla_bench.registry import get_registry
    from simla_bench.tasks import predictions as P
    from simla_bench.tasks.grounding import boxes_json
    from simla_bench.tasks.retrieval import score_files_of

    cfg = C.load_default_config()
    source = C.prepare_world(cfg)
    rows = []
    for name, tc in cfg.tasks.items():
        task = get_registry().load("task", name)(name, tc.options)
        files: dict[str, bytes] = {}
        for kind, split, _ in task.data_splits():
            if split == "train" or source.has_split(kind, split) is False:
                continue
            data = source.load(kind, split)
            if name == "retrieval":
                sims, s_i2t, s_t2i = reranked(rng, len(data.images), len(data.texts), task.options["k"])
                files.update(score_files_of(split, s_i2t, s_t2i, task.options["k"], sims))
            elif name == "vqa":
                files[f"{split}_answers.json"] = P.json_bytes([{"question_id": r.question_id,
                                                                "answer": r.multiple_choice_answer}
                                                               for r in data.records])
            elif name == "grounding":
                files[f"{split}_boxes.json"] = boxes_json(data, np.array([r.proposals[0] for r in data]))
            elif name == "nlvr2":
                files[f"{split}_predictions.csv"] = "".join(f"{r.identifier},True\n" for r in data).encode()
        rows.append({"task": name, "files": len(files), "bytes": sum(len(v) for v in files.values()),
                     "names": sorted(files)})
    return rows


def coco_cell(rng: np.random.Generator, n_img: int, n_txt: int, k: int) -> dict:
    from simla_bench.tasks.metrics.official_files import read_score_matrix
    from simla_bench.tasks.metrics.retrieval import itm_eval
    from simla_bench.tasks.retrieval import score_files_of

    sims, s_i2t, s_t2i = reranked(rng, n_img, n_txt, k)
    t0 = time.perf_counter()
    files = score_files_of("test", s_i2t, s_t2i, k, sims)
    write_s = time.perf_counter() - t0
    out: dict = {"images": n_img, "texts": n_txt, "k": k, "write_seconds": write_s,
                 "files": {n: len(v) for n, v in files.items()},
                 "dense_float32_bytes_both_directions": 2 * n_img * n_txt * 4}
    out["bytes"] = sum(out["files"].values())
    with tempfile.TemporaryDirectory() as tmp:
        for fname, data in files.items():
            (Path(tmp) / fname).write_bytes(data)
        t0 = time.perf_counter()
        back_i2t = read_score_matrix(Path(tmp) / "test_scores_i2t.npz", (n_img, n_txt), "i2t")
        back_t2i = read_score_matrix(Path(tmp) / "test_scores_t2i.npz", (n_txt, n_img), "t2i")
        out["read_seconds"] = time.perf_counter() - t0
        out["bit_identical"] = bool(np.array_equal(back_i2t, s_i2t) and np.array_equal(back_t2i, s_t2i))
        txt2img = np.repeat(np.arange(n_img), n_txt // n_img)
        img2txt = [list(range(i * (n_txt // n_img), (i + 1) * (n_txt // n_img))) for i in range(n_img)]
        t0 = time.perf_counter()
        scored = itm_eval(back_i2t, back_t2i, txt2img, img2txt)
        out["score_seconds"] = time.perf_counter() - t0
        out["same_metrics_as_in_memory"] = scored["r_mean"] == itm_eval(s_i2t, s_t2i, txt2img, img2txt)["r_mean"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    C.add_common_args(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = default_run(rng)
    C.print_table("prediction files of the default run (world: small)", ["task", "files", "bytes"],
                  [(r["task"], r["files"], r["bytes"]) for r in rows],
                  caption=f"total {sum(r['bytes'] for r in rows):,} bytes per seed")
    n_img, n_txt = (500, 2500) if args.quick else (5000, 25000)
    coco = coco_cell(rng, n_img, n_txt, 256)
    C.print_table(f"retrieval cell {n_img:,} x {n_txt:,}, k=256", ["file", "bytes"],
                  [*coco["files"].items(), ("total", coco["bytes"]),
                   ("dense float32, both directions", coco["dense_float32_bytes_both_directions"])],
                  caption=f"write {coco['write_seconds']:.1f} s, read back {coco['read_seconds']:.1f} s "
                          f"(bit-identical: {coco['bit_identical']}), itm_eval {coco['score_seconds']:.1f} s")
    path = C.write_result("predictions_disk", {"default_run": rows, "coco_cell": coco, "quick": args.quick},
                          args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
