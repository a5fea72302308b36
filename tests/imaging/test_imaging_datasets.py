"""Dataset readers on tiny files in the real layouts (NIH, CheXpert, MIMIC, manifest, folders)."""

import csv
import math

import numpy as np
import pytest
from PIL import Image

from medai.imaging.datasets import (
    DatasetFormatError,
    load_dataset,
    patient_split,
    read_chexpert,
    read_folder,
    read_manifest,
    read_mimic,
    read_nih,
    thumbnail_groups,
)
from medai.imaging.labels import space

CXR = space("cxr")


def img(path, seed=0, size=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def write(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def t(ds, i, label):
    return ds.records[i].targets[CXR.index(label)]


def test_manifest_masks_unannotated_labels_and_reports_unknown(tmp_path):
    for i in range(4):
        img(tmp_path / "images" / f"{i}.png", i)
    m = write(
        tmp_path / "manifest.csv",
        ["file", "label", "patient", "src"],
        [
            ["images/0.png", "COVID-19", "p1", "a"],
            ["images/1.png", "No Finding", "p2", "b"],
            ["images/2.png", "Pleural Effusion|Pneumonia", "p3", "a"],
            ["images/3.png", "ARDS", "p4", "a"],
            ["images/missing.png", "No Finding", "p5", "a"],
        ],
    )
    ds = read_manifest(m, "cxr")
    assert len(ds.records) == 3
    assert ds.unknown_labels == {"ARDS": 1} and ds.skipped["missing_file"] == 1
    assert t(ds, 0, "COVID-19") == 1 and t(ds, 0, "Pneumonia") == 1  # subtype implies parent
    assert t(ds, 1, "COVID-19") == 0 and t(ds, 1, "No Finding") == 1
    assert t(ds, 2, "Effusion") == 1 and math.isnan(t(ds, 2, "COVID-19"))  # subtype unknown
    assert math.isnan(t(ds, 0, "Cardiomegaly"))  # never annotated in this manifest
    assert ds.records[0].patient == "p1" and ds.records[0].source == "a"


def test_nih_layout(tmp_path):
    for name in ("a.png", "b.png"):
        img(tmp_path / "images" / name)
    csv_path = write(
        tmp_path / "Data_Entry_2017.csv",
        ["Image Index", "Finding Labels", "Follow-up #", "Patient ID"],
        [["a.png", "Cardiomegaly|Effusion", "0", "11"], ["b.png", "No Finding", "0", "12"]],
    )
    ds = load_dataset(csv_path, "cxr")
    assert [r.patient for r in ds.records] == ["11", "12"]
    assert t(ds, 0, "Cardiomegaly") == 1 and t(ds, 0, "Hernia") == 0
    assert math.isnan(t(ds, 0, "COVID-19"))  # NIH does not annotate COVID-19
    assert read_nih(csv_path, tmp_path / "images").records[1].source == "nih"


@pytest.mark.parametrize("policy,expected", [("ones", 1.0), ("zeros", 0.0), ("ignore", None)])
def test_chexpert_uncertainty_policies(tmp_path, policy, expected):
    rel = "CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg"
    img(tmp_path / rel)
    header = [
        "Path",
        "Sex",
        "Age",
        "Frontal/Lateral",
        "AP/PA",
        "No Finding",
        "Enlarged Cardiomediastinum",
        "Cardiomegaly",
        "Lung Opacity",
        "Lung Lesion",
        "Edema",
        "Consolidation",
        "Pneumonia",
        "Atelectasis",
        "Pneumothorax",
        "Pleural Effusion",
        "Pleural Other",
        "Fracture",
        "Support Devices",
    ]
    row = [
        rel,
        "F",
        "60",
        "Frontal",
        "AP",
        "",
        "",
        "1.0",
        "",
        "",
        "-1.0",
        "0.0",
        "",
        "",
        "",
        "1.0",
        "",
        "",
        "1.0",
    ]
    ds = read_chexpert(write(tmp_path / "train.csv", header, [row]), tmp_path, policy)
    (rec,) = ds.records
    assert rec.patient == "patient00001"
    assert t(ds, 0, "Cardiomegaly") == 1 and t(ds, 0, "Effusion") == 1
    assert t(ds, 0, "Consolidation") == 0 and t(ds, 0, "Fracture") == 0  # blank → 0
    edema = t(ds, 0, "Edema")
    assert math.isnan(edema) if expected is None else edema == expected
    assert math.isnan(t(ds, 0, "COVID-19"))


def test_chexpert_bad_policy(tmp_path):
    with pytest.raises(DatasetFormatError):
        read_chexpert(tmp_path / "x.csv", tmp_path, "maybe")


def test_mimic_join(tmp_path):
    img(tmp_path / "files" / "p10" / "p10000032" / "s50414267" / "abc.jpg")
    labels = write(
        tmp_path / "chexpert.csv",
        ["subject_id", "study_id", "Cardiomegaly", "Edema"],
        [["10000032", "50414267", "1.0", "-1.0"]],
    )
    meta = write(
        tmp_path / "metadata.csv",
        ["dicom_id", "subject_id", "study_id"],
        [["abc", "10000032", "50414267"], ["zzz", "10000033", "1"]],
    )
    ds = read_mimic(labels, meta, tmp_path, uncertainty="ones")
    assert len(ds.records) == 1 and ds.skipped["no_labels"] == 1
    assert t(ds, 0, "Cardiomegaly") == 1 and t(ds, 0, "Edema") == 1


def test_folder_per_class_with_synonyms(tmp_path):
    for cls in ("glioma_tumor", "no_tumor", "astrocytoma"):
        for i in range(2):
            img(tmp_path / "mri" / cls / f"{i}.png", i)
    ds = read_folder(tmp_path / "mri", "mri")
    assert len(ds.records) == 4 and ds.unknown_labels == {"astrocytoma": 2}
    assert {tuple(r.targets) for r in ds.records} == {(1, 0, 0, 0), (0, 0, 0, 1)}


def test_missing_columns(tmp_path):
    with pytest.raises(DatasetFormatError, match="missing column"):
        read_manifest(write(tmp_path / "m.csv", ["image", "finding"], [["a", "b"]]), "cxr")


def test_thumbnail_groups_find_near_identical_slices(tmp_path):
    base = np.random.default_rng(1).integers(0, 200, (64, 64)).astype(np.uint8)
    paths = []
    for i, arr in enumerate([base, np.clip(base + 10, 0, 255).astype(np.uint8), 255 - base]):
        p = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    g = thumbnail_groups(paths)
    assert g[0] == g[1] and g[2] != g[0]


def test_an_unreadable_image_is_a_group_of_its_own_not_a_crash(tmp_path):
    """A truncated PNG, or a text file named .png, in a class folder crashed training with
    PIL's traceback here (the loader skips and counts such images, per the README)."""
    base = np.random.default_rng(2).integers(0, 200, (64, 64)).astype(np.uint8)
    good = tmp_path / "good.png"
    Image.fromarray(base).save(good)
    Image.fromarray(base).save(twin := tmp_path / "twin.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    g = thumbnail_groups([good, truncated, twin, text])
    assert g[0] == g[2] and len({g[0], g[1], g[3]}) == 3


def test_patient_split_keeps_patients_whole(tmp_path):
    rows = []
    for i in range(60):
        img(tmp_path / f"{i}.png", i, size=34)
        rows.append(
            [f"{i}.png", ["No Finding", "COVID-19", "Pneumonia (viral)"][i % 3], f"p{i // 3}"]
        )
    ds = read_manifest(write(tmp_path / "m.csv", ["file", "label", "patient"], rows), "cxr")
    tr, va, te = patient_split(ds, test_frac=0.25, val_frac=0.2)
    patients = [{ds.records[i].patient for i in part} for part in (tr, va, te)]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert len(tr) + len(va) + len(te) == 60


def test_a_tasks_own_label_hierarchy_shapes_its_targets(tmp_path, monkeypatch):
    """The readers take a label's parents from its task (``Task.parents``), not from the chest
    X-ray task's: a knee task's subtype implies its own parent, and its bare parent leaves the
    subtype unknown, while the chest's pneumonias mean nothing to it."""
    from medai.core import task_registry
    from medai.core.task_registry import Task, loader_from

    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    task_registry.register(
        Task(
            name="knee",
            kind="imaging",
            loader=loader_from("x:y"),
            labels=("Fracture", "Tibial_Fracture", "Pneumonia", "Normal"),
            multilabel=True,
            normal="Normal",
            parents={"Tibial_Fracture": "Fracture"},
            mentions_en={"Fracture": "fractur", "Tibial_Fracture": "tibia", "Pneumonia": "pneum"},
            mentions_tr={"Fracture": "kırık", "Tibial_Fracture": "tibia", "Pneumonia": "pnömoni"},
            phrases={lab: (lab, lab) for lab in ("Fracture", "Tibial_Fracture", "Pneumonia")},
        )
    )
    for i in range(3):
        img(tmp_path / "images" / f"{i}.png", i)
    m = write(
        tmp_path / "manifest.csv",
        ["file", "label"],
        [
            ["images/0.png", "Tibial_Fracture"],
            ["images/1.png", "Fracture"],
            ["images/2.png", "Normal"],
        ],
    )
    ds = read_manifest(m, "knee")
    knee = space("knee")

    def k(i, label):
        return ds.records[i].targets[knee.index(label)]

    assert k(0, "Tibial_Fracture") == 1 and k(0, "Fracture") == 1  # the subtype implies it
    assert k(1, "Fracture") == 1 and math.isnan(k(1, "Tibial_Fracture"))  # subtype not stated
    assert k(2, "Tibial_Fracture") == 0 and k(2, "Fracture") == 0 and k(2, "Normal") == 1
    assert math.isnan(k(0, "Pneumonia"))  # never annotated here


def test_near_identical_dicom_slices_are_grouped_as_pngs_are(tmp_path):
    """A patient-free set of DICOM slices: PIL cannot open them, so each counted as
    unreadable and became a group of its own; near-identical slices could then land on both
    sides of the split. They are decoded as training decodes them."""
    from helpers.dicom import make_dicom

    paths = [
        make_dicom(tmp_path / "a.dcm", "MR", seed=1),
        make_dicom(tmp_path / "b.dcm", "MR", seed=1),  # the same slice again
        make_dicom(tmp_path / "c.dcm", "MR", seed=2),
    ]
    g = thumbnail_groups(paths)
    assert g[0] == g[1] and g[2] != g[0]
