"""Issue 21, the report's part: what a first report on one's own logs must not do.

One test (or a few) per bullet: no std for one seed, RelaImpr only against a base above chance, no
duplicate intent-fit row, AUC bars from 0.5, sample sizes and small groups marked, training warnings
shown, another labelling refused, pictures confined to the dataset folder and missing ones reported,
a --dpi flag. Values are checked against numpy / scikit-learn / pandas / permutations, not against
the report's own code.
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from daian import metrics as M
from report import ReportConfig, build_report
from report import analysis as A
from report import figures as F
from report.cli import build_parser, main

from .conftest import EDGES, _intent_column, _labelled_split, _predicted_intent, _scores, _write_seed

MIN_USERS = 30  # the documented minimum (docs/report.md), restated here on purpose


# ----------------------------------------------------------------------------- a crowd of users


@pytest.fixture(scope="module")
def crowd(world, tmp_path_factory) -> dict:
    """130 users (126 specific with one planted profile, 4 broad with another), 500 test requests;
    single-seed runs: din with signal, din at chance, din constant, daian."""
    root = tmp_path_factory.mktemp("crowd")
    dataset = root / "dataset"
    shutil.copytree(world["dataset"], dataset)
    users = 900 + np.arange(130, dtype=np.int64)
    types = ["broad" if k < 4 else "specific" for k in range(users.size)]
    profiles = np.array([[0.3, 0.3, 0.2, 0.2] if t == "broad" else [0.1, 0.2, 0.3, 0.4] for t in types])
    pq.write_table(pa.table({"user_id": users, "gender": users % 2}), dataset / "users.parquet")
    pq.write_table(pa.table({"user_id": users, "user_type": types, "intent_profile": _intent_column(profiles)}),
                   dataset / "truth" / "users.parquet")
    items = pq.read_table(dataset / "items.parquet").column("item_id").to_numpy()
    rng = np.random.default_rng(21)
    user_type = dict(zip(users.tolist(), types))
    labelled = root / "labelled"
    labelled.mkdir()
    # broad users request rarely: 4 of them, a handful of requests
    weights_users = np.r_[users[4:], users[:4]]
    train = _labelled_split(rng, 500, 10_000, weights_users, items, user_type, EDGES, 1_767_225_600)
    test = _labelled_split(rng, 420, 20_000, users[4:], items, user_type, EDGES, 1_767_225_600 + 7 * 86_400)
    few = _labelled_split(rng, 6, 30_000, users[:4], items, user_type, EDGES, 1_767_225_600 + 8 * 86_400)
    test = pa.concat_tables([test, few])
    pq.write_table(train, labelled / "train.parquet")
    pq.write_table(test, labelled / "test.parquet")
    (labelled / "manifest.json").write_text(json.dumps({"version": 1, "levels": 4, "bin_edges": EDGES}))
    clicked = test.column("clicked").to_numpy().astype(np.float64)
    runs = {}

    def write(name: str, model: str, score: np.ndarray, intent=None):
        folder = root / "runs" / name
        _write_seed(folder, test, score.astype(np.float32), intent, model=model, ablation=None, seed=1,
                    data=labelled, dataset=dataset)
        runs[name] = folder

    srng = np.random.default_rng(5)
    write("din", "din", _scores(srng, clicked, 0.9))
    write("daian", "daian", _scores(srng, clicked, 1.4), _predicted_intent(srng, test, 4))
    user = test.column("user_id").to_numpy()
    n1 = clicked.sum()
    n0 = clicked.size - n1
    se = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))  # Mann-Whitney's variance under no signal
    noise = np.random.default_rng(0)
    while True:  # a DIN whose scores carry no signal; keep a draw whose AUC and GAUC lie near 0.5
        chance = noise.uniform(0.1, 0.2, clicked.size)
        if abs(roc_auc_score(clicked, chance) - 0.5) < se and abs(M.gauc(clicked, chance, user) - 0.5) < se:
            break
    write("din_chance", "din", chance)
    write("din_constant", "din", np.full(clicked.size, 0.127))
    return {"root": root, "dataset": dataset, "labelled": labelled, "runs": runs, "user_type": user_type}


def _build(crowd_or_world, runs, out, **settings) -> dict:
    settings = {"dpi": 40, **settings}  # small figures: these tests read numbers, not pixels
    config = ReportConfig(runs=tuple(runs), out=out, data=crowd_or_world["labelled"],
                          dataset=crowd_or_world["dataset"], progress=False, **settings)
    paths = build_report(config)
    return {"md": paths["markdown"].read_text(), "html": paths["html"].read_text(),
            "json": json.loads(paths["json"].read_text())}


@pytest.fixture(scope="module")
def crowd_report(crowd, tmp_path_factory) -> dict:
    return _build(crowd, [crowd["runs"]["din"], crowd["runs"]["daian"]], tmp_path_factory.mktemp("crowd_out"),
                  diversity="profile", examples=0, min_cell_impressions=20)


def _table(md: str, section: str) -> list[list[str]]:
    """The first Markdown table under `## section`: its rows (header first) as lists of cells."""
    body = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def _preds(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "predictions.parquet")


def _gauc(df: pd.DataFrame) -> float:
    num = den = 0.0
    for _, g in df.groupby("user_id"):
        if g["clicked"].nunique() == 2:
            num += roc_auc_score(g["clicked"], g["score"]) * len(g)
            den += len(g)
    return num / den


# ----------------------------------------------------------------------------- 1. one seed: no std


def test_one_seed_shows_no_std(crowd, crowd_report):
    md, report = crowd_report["md"], crowd_report["json"]
    assert "± 0.0000" not in md and "± 0.0000" not in crowd_report["html"]
    rows = {r[0]: r for r in _table(md, "Model comparison")[1:]}
    for name, label in (("din", "DIN"), ("daian", "DAIAN")):
        df = _preds(crowd["runs"][name])
        auc, gauc = roc_auc_score(df["clicked"], df["score"]), _gauc(df)
        assert rows[label][1] == f"{auc:.4f} (1 seed)"
        assert rows[label][3] == f"{gauc:.4f} (1 seed)"
        got = next(r for r in report["comparison"] if r["run"] == name)
        assert got["auc"]["std"] is None and got["auc"]["values"] == pytest.approx([auc])
    assert "1 seed (1)" in md  # the lead says one seed


def test_two_seeds_keep_the_sample_std(world, report):
    df = [_preds(world["cmp"] / "din" / f"seed-{s}") for s in (1, 2)]
    aucs = [roc_auc_score(d["clicked"], d["score"]) for d in df]
    assert f"{np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}" in report["html"]


# ----------------------------------------------------------------------------- 2. RelaImpr above chance


def _permutation_se(clicked: np.ndarray, users: np.ndarray, score: np.ndarray, n: int = 300) -> tuple[float, float]:
    """The AUC's and GAUC's standard deviation when the clicks are shuffled (within users for GAUC)."""
    rng = np.random.default_rng(1)
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1], True])
    aucs, gaucs = [], []
    for _ in range(n):
        aucs.append(roc_auc_score(rng.permutation(clicked), score))
        shuffled = clicked[order].copy()
        for a, b in zip(bounds[:-1], bounds[1:]):
            shuffled[a:b] = rng.permutation(shuffled[a:b])
        gaucs.append(M.gauc(shuffled, score[order], users[order]))
    return float(np.std(aucs)), float(np.std(gaucs))


def test_null_standard_errors_match_a_permutation_test(crowd, crowd_report):
    df = _preds(crowd["runs"]["din"])
    se_auc, se_gauc = _permutation_se(df["clicked"].to_numpy(np.float64), df["user_id"].to_numpy(),
                                      df["score"].to_numpy(np.float64))
    chance = crowd_report["json"]["chance"]
    assert chance["auc"]["null_se"] == pytest.approx(se_auc, rel=0.15)
    assert chance["gauc"]["null_se"] == pytest.approx(se_gauc, rel=0.15)
    assert chance["gauc"]["threshold"] == pytest.approx(0.5 + 2 * chance["gauc"]["null_se"])


def test_relaimpr_is_shown_against_a_base_above_chance(crowd, crowd_report):
    din, daian = _preds(crowd["runs"]["din"]), _preds(crowd["runs"]["daian"])
    chance = crowd_report["json"]["chance"]
    assert roc_auc_score(din["clicked"], din["score"]) > chance["auc"]["threshold"]  # the premise
    rows = {r[0]: r for r in _table(crowd_report["md"], "Model comparison")[1:]}
    impr = ((roc_auc_score(daian["clicked"], daian["score"]) - 0.5)
            / (roc_auc_score(din["clicked"], din["score"]) - 0.5) - 1) * 100
    assert rows["DAIAN"][2] == f"{impr:.2f}% (1 seed)"
    assert "no better than chance" not in crowd_report["md"] and "the reference is at chance" not in crowd_report["md"]


@pytest.mark.parametrize("din", ["din_chance", "din_constant"])
def test_relaimpr_against_a_base_at_chance_is_not_shown(crowd, tmp_path, din):
    df = _preds(crowd["runs"][din])
    clicked, users = df["clicked"].to_numpy(np.float64), df["user_id"].to_numpy()
    noise = np.random.default_rng(3).random(clicked.size)  # the null SE needs untied scores, any will do
    se_auc, se_gauc = _permutation_se(clicked, users, noise, n=100)
    # the premise, measured independently: the base is within noise of 0.5
    assert abs(roc_auc_score(clicked, df["score"]) - 0.5) < 2 * se_auc
    assert abs(_gauc(df) - 0.5) < 2 * se_gauc
    got = _build(crowd, [crowd["runs"][din], crowd["runs"]["daian"]], tmp_path / "out", examples=0)
    rows = {r[0]: r for r in _table(got["md"], "Model comparison")[1:]}
    assert rows["DAIAN"][2] == "n/a (base at chance)" and rows["DAIAN"][4] == "n/a (base at chance)"
    assert rows["DIN"][2] == "reference"
    daian = next(r for r in got["json"]["comparison"] if r["run"] == "daian")
    assert daian["rela_auc"]["mean"] is None and daian["rela_auc_note"] == "base at chance"
    assert "the reference is at chance" in got["md"]
    assert "DIN's test AUC" in got["md"] and "no better than chance" in got["md"]
    assert not re.search(r"\d{3,}\.\d\d%", got["md"])  # no 3482.67%-style number anywhere


# ----------------------------------------------------------------------------- 3. no duplicate rows


def test_intent_fit_without_user_types_has_one_row(world, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(world["dataset"], dataset)
    shutil.rmtree(dataset / "truth")  # your own logs: no planted user types
    got = _build({"labelled": world["labelled"], "dataset": dataset}, [world["cmp"]], tmp_path / "out",
                 examples=0, diversity_buckets=3)
    rows = _table(got["md"], "Intent fit (DAIAN Figure 5)")[1:]
    test = pd.read_parquet(world["labelled"] / "test.parquet")
    clicked = test[test["has_intent"]]
    assert len(rows) == 1 and rows[0][0].startswith("all users")
    assert rows[0][1] == f"{clicked['user_id'].nunique():,}" and rows[0][2] == f"{clicked['request_id'].nunique():,}"
    assert got["json"]["intent_fit"]["rows"] == ["all users"]


def test_no_table_repeats_a_row(report):
    md = report["paths"]["markdown"].read_text()
    for block in re.split(r"\n\n", md):
        rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("|---")]
        cells = [tuple(line.split("|")[2:]) for line in rows[1:]]  # every cell but the label
        assert len(set(cells)) == len(cells), block


# ----------------------------------------------------------------------------- 4. bars from 0.5


def _stats(values) -> A.Stat:
    return A.Stat.of(values)


def test_comparison_bars_start_at_chance():
    rows = [{"label": "DIN", "model": "din", "auc": _stats([0.531, 0.535]), "gauc": _stats([0.541, 0.544])},
            {"label": "DAIAN", "model": "daian", "auc": _stats([0.552, 0.556]), "gauc": _stats([0.561, 0.566])}]
    fig = F.plot_comparison(rows)
    for ax, key in zip(fig.axes, ("auc", "gauc")):
        assert ax.get_ylim()[0] == 0.5
        bars = [p for p in ax.patches]
        means = np.array([np.mean(r[key].values) for r in rows])
        np.testing.assert_allclose([b.get_y() for b in bars], 0.5)
        np.testing.assert_allclose([b.get_y() + b.get_height() for b in bars], means)


def test_diversity_bars_start_at_chance():
    rows = [{"bucket": b, "low": 0.1 * b, "high": 0.1 * b, "rows": 500, "test_users": 50, "gauc_users": 40,
             "too_small": False, "din": _stats([0.53 + 0.01 * b]), "daian": _stats([0.55 + 0.01 * b])}
            for b in range(3)]
    fig = F.plot_diversity_gain(rows, ("din", "DIN"), ("daian", "DAIAN"), "x", ["a", "b", "c"])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0.5
    tops = sorted(b.get_y() + b.get_height() for b in ax.patches)
    np.testing.assert_allclose([b.get_y() for b in ax.patches], 0.5)
    np.testing.assert_allclose(tops, sorted([0.53, 0.54, 0.55, 0.55, 0.56, 0.57]))


# ----------------------------------------------------------------------------- 5. sample sizes


def test_diversity_groups_carry_their_sizes_and_small_ones_are_marked(crowd, crowd_report):
    test = pd.read_parquet(crowd["labelled"] / "test.parquet")
    test["type"] = test["user_id"].map(crowd["user_type"])
    rows = _table(crowd_report["md"], "GAUC by user intent diversity (DAIAN Figure 6)")
    assert rows[0][:4] == ["Diversity group", "Test users", "Users in GAUC", "Test impressions"]
    groups = crowd_report["json"]["diversity"]["groups"]
    assert len(groups) == 2 == len(rows) - 1  # two planted profiles: specific (low entropy), broad
    for row, group_type in zip(rows[1:], ("specific", "broad")):
        part = test[test["type"] == group_type]
        per_user = part.groupby("user_id")["clicked"].agg(["min", "max"])
        both = int((per_user["min"] != per_user["max"]).sum())
        assert row[1] == f"{part['user_id'].nunique():,}" and row[2] == f"{both:,}" and row[3] == f"{len(part):,}"
        small = both < MIN_USERS
        assert ("too few users" in row[6]) == small
        assert re.match(r"^[+-]\d+\.\d\d%", row[6])  # the gain is still given, marked when small
    assert "too few users" in rows[2][6] and "too few users" not in rows[1][6]  # 4 broad users, 126 specific
    assert '<tr class="muted"><td class="text">' in crowd_report["html"]


def test_intent_fit_groups_carry_their_sizes(crowd, crowd_report):
    test = pd.read_parquet(crowd["labelled"] / "test.parquet")
    test = test[test["has_intent"]]
    test["type"] = test["user_id"].map(crowd["user_type"])
    rows = {r[0].split(" (")[0]: r for r in _table(crowd_report["md"], "Intent fit (DAIAN Figure 5)")[1:]}
    for label, group in (("specific-intent users", "specific"), ("broad-intent users", "broad")):
        part = test[test["type"] == group]
        row = rows[label]
        assert row[1] == f"{part['user_id'].nunique():,}" and row[2] == f"{part['request_id'].nunique():,}"
        assert ("too few users" in row[0]) == (part["user_id"].nunique() < MIN_USERS)
    assert "too few users" in rows["broad-intent users"][0]


def test_ctr_sentence_gives_each_cells_impressions(crowd, crowd_report):
    train = pd.read_parquet(crowd["labelled"] / "train.parquet")
    level = pd.cut(train["trigger_target_sim"].astype(np.float64), bins=EDGES, right=False, labels=False)
    train["level"] = level.fillna(len(EDGES) - 2).astype(int)
    counts = train.groupby(["page", "level"]).size()
    text = crowd_report["md"].split("Here: ", 1)[1].split("\n", 1)[0]
    found = re.findall(r"page (\d+): [\d.]+% at level (\d) \(([\d,]+) impressions\), [\d.]+% at level (\d) "
                       r"\(([\d,]+) impressions", text)
    assert found
    for page, hi, n_hi, lo, n_lo in found:
        assert int(n_hi.replace(",", "")) == counts[(int(page), int(hi))]
        assert int(n_lo.replace(",", "")) == counts[(int(page), int(lo))]


# ----------------------------------------------------------------------------- 6. training warnings


def test_training_warnings_are_shown(world, tmp_path, capsys):
    cmp = tmp_path / "cmp"
    shutil.copytree(world["cmp"], cmp)
    text = "test scores are constant (p = 0.127 for every candidate): DIN did not learn"
    path = cmp / "din" / "seed-1" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["warnings"] = [text]
    metrics["recipe"] = {"asked": "auto", "used": "small", "reason": "2 steps per epoch at batch 4096",
                         "settings": {"batch_size": 256}}
    path.write_text(json.dumps(metrics))
    for seed in (1, 2):  # the other runs: an empty list, or no key at all (older runs)
        path = cmp / "daian" / f"seed-{seed}" / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "warnings": []}))
    out = tmp_path / "out"
    assert main([str(cmp), "--out", str(out), "--examples", "0", "--dpi", "40", "--no-progress"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and err[0].startswith("tir-report: warning: 1 warning(s) from training") and text in err[0]
    html = (out / "report.html").read_text()
    box = html.split('<div class="warnings">', 1)[1].split("</div>", 1)[0]
    assert html.index('<div class="warnings">') < html.index("<h2")  # at the top, before any section
    assert box.count("<p>") == 1 and f"DIN (seed 1), from training: {text}" in box
    md = (out / "report.md").read_text()
    assert f"> **Warning**: DIN (seed 1), from training: {text}" in md.split("## ", 1)[0]
    setup = {r[0]: r for r in _table(md, "Data and runs")}
    assert setup["Run"][-1] == "Recipe"
    assert setup["din"][-1] == "small (asked auto; 2 steps per epoch at batch 4096)"
    assert setup["daian"][-1] == "not recorded"
    assert json.loads((out / "report.json").read_text())["training_warnings"] == [
        {"run": "din", "seeds": [1], "text": text}]


def test_runs_without_warnings_show_none(report):
    assert 'class="warnings"' not in report["html"] and "> **Warning**" not in report["paths"]["markdown"].read_text()
    assert report["json"]["training_warnings"] == []


# ----------------------------------------------------------------------------- 7. another labelling


def _relabel(world, folder: Path, **changes) -> Path:
    shutil.copytree(world["labelled"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, **changes}))
    return folder


def test_another_labelling_is_refused(world, tmp_path, user_error):
    other = _relabel(world, tmp_path / "relabelled", bin_edges=[-0.2, 0.2, 0.5, 0.8, 1.0])
    out = tmp_path / "out"
    assert main([str(world["cmp"]), "--data", str(other), "--out", str(out), "--no-progress"]) == 2
    line = user_error("tir-report")
    assert f"--data {other}" in line and str(world["labelled"]) in line
    assert "bin_edges [-0.2, 0.1, 0.4, 0.7, 1.0] vs [-0.2, 0.2, 0.5, 0.8, 1.0]" in line
    assert not out.exists()


def test_another_labelling_of_other_inputs_is_refused(world, tmp_path, user_error):
    # the runs' labelling records its inputs' hashes; a labelling of another items.parquet is refused
    trained = _relabel(world, tmp_path / "trained", inputs={"items.parquet": "a" * 64})
    other = _relabel(world, tmp_path / "other", inputs={"items.parquet": "b" * 64})
    run = tmp_path / "din"
    shutil.copytree(world["cmp"] / "din", run)
    for seed in (1, 2):
        path = run / f"seed-{seed}" / "checkpoint" / "config.json"
        config = json.loads(path.read_text())
        config["train"]["data"] = str(trained)
        path.write_text(json.dumps(config))
    assert main([str(run), "--data", str(other), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    line = user_error("tir-report")
    assert "inputs sha256 of items.parquet: aaaaaaaaaaaa vs bbbbbbbbbbbb" in line and str(trained) in line


def test_a_copy_of_the_same_labelling_is_accepted(world, tmp_path):
    same = _relabel(world, tmp_path / "copy")
    got = _build({"labelled": same, "dataset": world["dataset"]}, [world["cmp"] / "din"], tmp_path / "out",
                 examples=0)
    assert got["json"]["data"] == str(same)


# ----------------------------------------------------------------------------- 8. pictures


def _with_images(world, tmp_path: Path, image) -> Path:
    """A copy of the dataset whose items' `image` values are `image(item_id, old_value)`."""
    dataset = tmp_path / "dataset"
    shutil.copytree(world["dataset"], dataset)
    table = pq.read_table(dataset / "items.parquet")
    values = [image(i, v) for i, v in zip(table.column("item_id").to_pylist(), table.column("image").to_pylist())]
    pq.write_table(table.set_column(table.column_names.index("image"), "image", pa.array(values, pa.string())),
                   dataset / "items.parquet")
    return dataset


def test_a_picture_outside_the_dataset_is_refused(world, tmp_path, user_error):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "outside.png")  # a readable file, outside
    dataset = _with_images(world, tmp_path / "a" / "b", lambda i, v: "../../outside.png")
    out = tmp_path / "out"
    argv = [str(world["cmp"] / "din"), "--dataset", str(dataset), "--out", str(out), "--examples", "1",
            "--no-progress"]
    assert main(argv) == 2
    line = user_error("tir-report")
    assert re.search(r"item \d+: picture path '\.\./\.\./outside\.png' resolves to .*outside\.png, outside", line)
    assert not out.exists()  # nothing written, nothing embedded


def _shown_items(report: dict) -> list[int]:
    return list(dict.fromkeys(i for ex in report["examples"] for i in
                              [ex["trigger"]] + [t["item_id"] for m in ex["models"] for t in m["targets"]]))


@pytest.mark.parametrize("breaks", ["one file deleted", "one file corrupt", "images folder gone"])
def test_missing_pictures_are_reported(world, tmp_path, capsys, breaks):
    dataset = tmp_path / "dataset"
    shutil.copytree(world["dataset"], dataset)
    out = tmp_path / "out"
    argv = [str(world["cmp"] / "din"), "--dataset", str(dataset), "--out", str(out), "--examples", "2",
            "--top-k", "4", "--dpi", "40", "--no-progress"]
    victim = None
    if breaks.startswith("one file"):  # learn which items the report shows, then break one of their files
        assert main([*argv[:4], str(tmp_path / "probe"), *argv[5:]]) == 0
        shown = _shown_items(json.loads((tmp_path / "probe" / "report.json").read_text()))
        items = pd.read_parquet(dataset / "items.parquet").set_index("item_id")
        victim = next(i for i in shown if pd.notna(items.loc[i, "image"]))
        path = dataset / items.loc[victim, "image"]
        if breaks == "one file deleted":
            path.unlink()
        else:
            path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    else:
        shutil.rmtree(dataset / "images")
    capsys.readouterr()
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    shown = _shown_items(report)
    items = pd.read_parquet(dataset / "items.parquet").set_index("item_id").loc[shown]
    named = items["image"].notna()
    missing = [i for i, v in items["image"].items() if pd.notna(v) and not (dataset / v).is_file()]
    corrupt = [victim] if breaks == "one file corrupt" else []
    assert len(missing) + len(corrupt) == (int(named.sum()) if breaks == "images folder gone" else 1)
    no_value = int((~named).sum())
    md = (out / "report.md").read_text()
    bad = len(missing) + len(corrupt)
    assert (f"**Pictures missing**: {bad + no_value} of the {len(shown)} items shown below have no "
            f"picture file") in md
    if missing:
        assert f"{len(missing)} name a file that does not exist" in md
    if corrupt:
        assert f"1 cannot be opened (e.g. {path}: " in md  # common.pictures' reason follows the path
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"tir-report: warning: {bad} of the {len(shown)} items shown in the example requests have no "
        "readable picture file")
    assert sorted(report["example_pictures"]["missing"]) == sorted(missing)
    assert report["example_pictures"]["unreadable"] == corrupt


def test_pictures_are_opened_under_the_pixel_limit(world, tmp_path, monkeypatch):
    import common.pictures as P

    dataset = tmp_path / "dataset"
    shutil.copytree(world["dataset"], dataset)
    opened = []
    real = P.open_picture

    def spy(path, *args, **kwargs):
        opened.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(P, "open_picture", spy)
    got = _build({"labelled": world["labelled"], "dataset": dataset}, [world["cmp"] / "din"], tmp_path / "out",
                 examples=1, top_k=3)
    shown = _shown_items(got["json"])
    items = pd.read_parquet(dataset / "items.parquet").set_index("item_id").loc[shown]
    expected = sorted((dataset / v).resolve() for v in items["image"] if pd.notna(v))
    assert sorted(opened) == expected


# ----------------------------------------------------------------------------- 9. --dpi


def test_dpi_flag_sets_the_figures_resolution(world, tmp_path):
    help_text = " ".join(build_parser().format_help().split())
    assert "--dpi DPI resolution of the PNG figures, in dots per inch (default 110)" in help_text
    out = tmp_path / "out"
    assert main([str(world["cmp"] / "din"), "--out", str(out), "--examples", "0", "--dpi", "40",
                 "--no-progress"]) == 0
    with Image.open(out / "figures" / "comparison.png") as img:
        assert img.info["dpi"] == pytest.approx((40, 40), abs=0.1)
    rows = [{"label": "DIN", "model": "din", "auc": _stats([0.6, 0.62]), "gauc": _stats([0.58, 0.6])}]
    with Image.open(io.BytesIO(F.to_png(F.plot_comparison(rows), 40))) as small, \
            Image.open(io.BytesIO(F.to_png(F.plot_comparison(rows), 80))) as big:
        assert big.width == pytest.approx(2 * small.width, rel=0.05)
