"""tools/split_dota.py and rotated_det.data.dota_split on the real DOTA sample P0706."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely.geometry as sg
from script_loading import load_script

from rotated_det.data.dota_split import (
    assign_objects_to_windows,
    get_sliding_windows,
    split_dota,
)
from rotated_det.structures.dota_format import parse_dota_label_file
from rotated_det.structures.dota_patch_name import parse_patch_name

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def samples(dota_samples):
    return dota_samples


@pytest.fixture(scope="module")
def p0706_dirs(samples, tmp_path_factory):
    d = tmp_path_factory.mktemp("p0706")
    (d / "images").mkdir()
    (d / "labelTxt").mkdir()
    shutil.copy(samples / "images" / "P0706.png", d / "images")
    shutil.copy(samples / "labelTxt" / "P0706.txt", d / "labelTxt")
    return d


def _tool():
    return load_script(REPO / "tools" / "split_dota.py")


def test_sliding_windows_hand_worked():
    w = get_sliding_windows(1111, 1182, [1024], [200])
    assert sorted(map(tuple, w[:, :2].tolist())) == [(0, 0), (0, 158), (87, 0), (87, 158)]
    assert ((w[:, 2] - w[:, 0]) == 1024).all()
    w = get_sliding_windows(2000, 1024, [1024], [200])
    assert sorted(w[:, 0].tolist()) == [0, 824, 976]
    # a small image: the only window is mostly padding, kept as the best available
    assert get_sliding_windows(285, 294, [1024], [200]).tolist() == [[0, 0, 1024, 1024]]
    # img_rate_thr drops windows mostly outside the image (none here: last window moved back)
    w = get_sliding_windows(1100, 600, [512], [0], img_rate_thr=0.6)
    assert sorted(set(w[:, 0].tolist())) == [0, 512, 588] and sorted(set(w[:, 1].tolist())) == [
        0,
        88,
    ]
    with pytest.raises(ValueError):
        get_sliding_windows(100, 100, [100], [100])


def test_assignment_iof_matches_shapely():
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 600, (400, 1, 2))
    polys = (c + rng.uniform(-40, 40, (400, 4, 2))).reshape(-1, 8)
    windows = get_sliding_windows(600, 600, [256], [64])
    res = assign_objects_to_windows(polys, windows, iof_thr=0.6)
    ref = set()
    for i, p in enumerate(polys):
        pts = p.reshape(4, 2)
        # the splitter reads any 4 points as the simple polygon of their angular order
        ctr = pts.mean(0)
        pts = sorted(pts.tolist(), key=lambda v: np.arctan2(v[1] - ctr[1], v[0] - ctr[0]))
        q = sg.Polygon(pts)
        for k, win in enumerate(windows):
            if q.intersection(sg.box(*win)).area / q.area >= 0.6:
                ref.add((i, k))
    got = set(zip(res.obj_idx.tolist(), res.win_idx.tolist()))
    assert got == ref
    # pieces wholly inside keep the input polygon exactly
    whole = ~res.clipped
    np.testing.assert_array_equal(res.polys[whole], polys[res.obj_idx[whole]])
    assert (res.iof[whole] == 1).all() and (res.iof >= 0.6).all()


def _read_patches(save_dir):
    out = []
    for f in sorted(os.listdir(save_dir / "labelTxt")):
        name, rate, x, y = parse_patch_name(f[:-4])
        lab = parse_dota_label_file(str(save_dir / "labelTxt" / f))
        out.append((f[:-4], name, rate, x, y, lab))
    return out


def test_p0706_patches_map_back_to_the_original_objects(p0706_dirs, tmp_path):
    orig = parse_dota_label_file(str(p0706_dirs / "labelTxt" / "P0706.txt"))
    save = tmp_path / "split"
    summary = split_dota(
        [str(p0706_dirs / "images")],
        str(save),
        [str(p0706_dirs / "labelTxt")],
        sizes=[512],
        gaps=[128],
        rates=[1.0, 0.5],
        iof_thr=0.7,
        progress=False,
    )
    patches = _read_patches(save)
    assert summary["patches"] == len(patches) == 9 + 4 == len(os.listdir(save / "images"))
    assert summary["objects"] == 536 and summary["kept"] == sum(len(p[-1]) for p in patches)

    img = cv2.imread(str(p0706_dirs / "images" / "P0706.png"))
    H, W = img.shape[:2]
    recovered = {1.0: [], 0.5: []}
    for stem, name, rate, x, y, lab in patches:
        assert name == "P0706"
        patch = cv2.imread(str(save / "images" / f"{stem}.png"))
        assert patch.shape == (512, 512, 3)  # padded to full size
        if rate == 1.0:
            crop = img[y : y + 512, x : x + 512]
            np.testing.assert_array_equal(patch[: crop.shape[0], : crop.shape[1]], crop)
        back = (lab.polys + np.array([x, y] * 4)) / rate  # patch -> original coordinates
        for p, c, d in zip(back, lab.class_names, lab.difficult):
            recovered[rate].append((p, c, int(d)))

    for rate, win_size in ((1.0, 512), (0.5, 512)):
        rh, rw = round(H * rate), round(W * rate)
        windows = get_sliding_windows(rw, rh, [win_size], [128])
        rec_polys = np.array([r[0] for r in recovered[rate]])
        n_inside = 0
        for p, c, d in zip(orig.polys, orig.class_names, orig.difficult):
            q = p * rate
            xs, ys = q[0::2], q[1::2]
            inside = (
                (xs.min() >= windows[:, 0])
                & (xs.max() <= np.minimum(windows[:, 2], rw))
                & (ys.min() >= windows[:, 1])
                & (ys.max() <= np.minimum(windows[:, 3], rh))
            )
            if not inside.any():
                continue
            n_inside += 1
            match = np.abs(rec_polys - p).max(axis=1) < 1e-3
            assert match.any(), f"object {p} (wholly inside a patch) was not recovered"
            j = int(np.nonzero(match)[0][0])
            assert recovered[rate][j][1:] == (c, int(d))
        assert n_inside > 500  # nearly all ships are small enough to be wholly inside a patch


def test_clipped_pieces_lie_in_their_patch_and_pass_iof(p0706_dirs, tmp_path):
    orig = parse_dota_label_file(str(p0706_dirs / "labelTxt" / "P0706.txt"))
    save = tmp_path / "s"
    split_dota(
        [str(p0706_dirs / "images")],
        str(save),
        [str(p0706_dirs / "labelTxt")],
        sizes=[400],
        gaps=[50],
        iof_thr=0.5,
        progress=False,
        save_ext=".jpg",
    )
    originals = [sg.MultiPoint(p.reshape(4, 2)).convex_hull for p in orig.polys]
    n_clipped = 0
    for stem, _, _, x, y, lab in _read_patches(save):
        win = sg.box(x, y, x + 400, y + 400)
        for p in lab.polys:
            piece = sg.Polygon((p + np.array([x, y] * 4)).reshape(4, 2))
            hull_win = piece.difference(win).area
            if hull_win > 1e-6:
                n_clipped += 1
                # a clipped piece is the minimum rectangle of the visible part: it may poke out
                # of the patch only a little
                assert hull_win < 0.35 * piece.area
        assert (save / "images" / f"{stem}.jpg").is_file()
    assert n_clipped > 0
    assert len(originals) == 536


def test_test_set_without_labels_and_no_padding(samples, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(samples / "images" / "P1888.png", d)
    # 712 x 557 image, 600 px windows: x at 0 and 112, one row cut at the image bottom
    s = split_dota(
        [str(d)],
        str(tmp_path / "out"),
        None,
        sizes=[600],
        gaps=[100],
        no_padding=True,
        progress=False,
    )
    assert s["patches"] == 2 and s["objects"] == 0 and s["kept"] == 0
    assert not (tmp_path / "out" / "labelTxt").exists()
    assert sorted(os.listdir(tmp_path / "out" / "images")) == [
        "P1888__1.0__0___0.png",
        "P1888__1.0__112___0.png",
    ]
    shapes = [
        cv2.imread(str(tmp_path / "out" / "images" / f)).shape[:2]
        for f in os.listdir(tmp_path / "out" / "images")
    ]
    assert shapes == [(557, 600), (557, 600)]


def test_tool_cli_options_and_summary(samples, tmp_path, capsys):
    img_dir, ann_dir = tmp_path / "i", tmp_path / "a"
    img_dir.mkdir()
    ann_dir.mkdir()
    shutil.copy(samples / "images" / "P1888.png", img_dir)
    (ann_dir / "P1888.txt").write_text(
        (samples / "labelTxt" / "P1888.txt").read_text() + "1 2 3 plane 0\n"
    )
    tool = _tool()
    argv = [
        "--img-dirs",
        str(img_dir),
        "--ann-dirs",
        str(ann_dir),
        "--sizes",
        "600",
        "--gaps",
        "100",
        "--rates",
        "1.0",
        "--img-rate-thr",
        "0.5",
        "--iof-thr",
        "0.7",
        "--padding-value",
        "7",
        "7",
        "7",
        "--save-ext",
        "png",
        "--nproc",
        "2",
        "--save-dir",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    with pytest.raises(ValueError, match=r"P1888.txt:67: malformed"):
        tool.main(argv)
    s = tool.main(argv + ["--skip-malformed"])
    out = capsys.readouterr().out
    assert "images: 1" in out and "patches: 2" in out and "malformed lines skipped: 1" in out
    assert s["objects"] == 64 and s["malformed"] == 1 and s["dropped"] == 0
    assert json.loads((tmp_path / "o" / "split_summary.json").read_text())["patches"] == 2
    # rows below the 557 px image are padding with the padding value
    patch = cv2.imread(str(tmp_path / "o" / "images" / "P1888__1.0__0___0.png"))
    assert patch.shape == (600, 600, 3) and (patch[557:] == 7).all()
    assert not (patch[:557] == 7).all()
    s = tool.main(
        [
            "--img-dirs",
            str(img_dir),
            "--save-dir",
            str(tmp_path / "ms"),
            "--preset",
            "ms",
            "--no-progress",
        ]
    )
    # 1024 px windows, 500 px gap on the 712x557 image at rates 0.5 and 1.0 (one window each)
    # and at 1.5 (1068 x 836: windows at x = 0 and x = 44)
    names = sorted(os.listdir(tmp_path / "ms" / "images"))
    assert s["patches"] == 4
    assert [parse_patch_name(n)[1:] for n in names] == [
        (0.5, 0, 0),
        (1.0, 0, 0),
        (1.5, 0, 0),
        (1.5, 44, 0),
    ]


def test_threaded_writing_gives_the_same_files(samples, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(samples / "images" / "P1888.png", d)
    outs = []
    for threads in (1, 3):
        out = tmp_path / f"t{threads}"
        split_dota(
            [str(d)], str(out), None, sizes=[300], gaps=[50], progress=False, write_threads=threads
        )
        outs.append({f: (out / "images" / f).read_bytes() for f in os.listdir(out / "images")})
    assert len(outs[0]) == 9 and outs[0] == outs[1]


@pytest.mark.parametrize(
    "save, how",
    [
        (".", "contains"),  # the dataset root: patches would land in its images/
        ("images", "is"),
        ("labelTxt/split", "lies inside"),
        ("alias", "is"),  # a symbolic link to images/
    ],
)
def test_save_dir_overlapping_the_inputs_is_refused(tmp_path, save, how):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    (root / "labelTxt" / "a.txt").write_text("1 1 9 1 9 9 1 9 plane 0\n")
    (root / "alias").symlink_to(root / "images")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    save_dir = str(root / save)
    expected_input = "labelTxt" if save.startswith("labelTxt") else "images"
    argv = ["--img-dirs", str(root / "images"), "--ann-dirs", str(root / "labelTxt")]
    argv += ["--sizes", "32", "--gaps", "0", "--save-dir", save_dir, "--no-progress"]
    with pytest.raises(
        ValueError, match=f"save_dir {save_dir} {how} the input folder .*{expected_input}"
    ):
        _tool().main(argv)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written
    # the same folders apart from each other split normally
    s = split_dota(
        [str(root / "images")],
        str(tmp_path / "out"),
        [str(root / "labelTxt")],
        sizes=[32],
        gaps=[0],
        progress=False,
    )
    assert s["patches"] == 4
