"""The personal/deployment adjustment: one fit in two languages (site/js/personal.js and
emotion/recalibration.py), checked against each other, and the server applying a card's
`recalibration` block."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from node_script import run_node
from starlette.testclient import TestClient

from emotion import recalibration
from emotion.app import create_app
from emotion.card import CLASSES
from emotion.model import EmotionModel
from face_images import astronaut_face, encode

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"


def shifted_samples(seed: int, per_class: int, classes=range(8)) -> tuple[np.ndarray, np.ndarray]:
    """Answers of a model that reads every face through a fixed shift toward Neutral."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array(list(classes)), per_class)
    logits = rng.normal(0, 1, (len(labels), 8))
    logits[np.arange(len(labels)), labels] += 2.5
    logits[:, CLASSES.index("Neutral")] += 2.0  # the person's faces look neutral to it
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(probs, 6), labels


def one_look_person(seed: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """A person the model reads as Neutral whatever they do, but each expression with its own
    mix of the other classes (the same face every time, a little noise per frame): no bias per
    class can tell their expressions apart, the rest of each answer can."""
    face = np.random.default_rng(11).normal(0, 1.5, (8, 8))
    face[:, CLASSES.index("Neutral")] += 4.0
    labels = np.repeat(np.arange(8), per_class)
    logits = face[labels] + np.random.default_rng(seed).normal(0, 0.3, (len(labels), 8))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(probs, 6), labels


def as_samples(probs: np.ndarray, labels: np.ndarray) -> list[dict]:
    return [
        {"predictions": dict(zip(CLASSES, map(float, p), strict=True)), "label": CLASSES[y]}
        for p, y in zip(probs, labels, strict=True)
    ]


def test_the_page_and_the_server_fit_the_same_adjustment():
    probs, labels = shifted_samples(1, 6)
    probs2, labels2 = shifted_samples(2, 4, classes=(0, 4, 5, 7))  # four classes only
    probs3, labels3 = one_look_person(1, 3)
    probs3 /= probs3.sum(axis=1, keepdims=True)
    sets = [(probs, labels), (probs2, labels2), (probs3, labels3)]
    script = f"""
import {{ fitPersonal, applyPersonal, FIT, FOLDS, SCALES, LOG_RANGE }} from './site/js/personal.js';
const fitted = {json.dumps([as_samples(p, y) for p, y in sets])}.map((s) => fitPersonal(s));
const one = {json.dumps(as_samples(probs3[:1], labels3[:1])[0]["predictions"])};
const applied = fitted.map((c) => applyPersonal(c, one));
console.log(JSON.stringify({{ fitted, applied, FIT, FOLDS, SCALES, LOG_RANGE }}));
"""
    out = run_node(script)
    assert out["FIT"] == {
        "penalty": recalibration.PENALTY,
        "mapPenalty": recalibration.MAP_PENALTY,
        "bound": recalibration.BOUND,
        "steps": recalibration.STEPS,
        "tolerance": recalibration.TOLERANCE,
        "floor": recalibration.FLOOR,
        "perClass": recalibration.PER_CLASS,
        "mapMargin": recalibration.MAP_MARGIN,
    }
    assert out["FOLDS"] == recalibration.FOLDS
    assert tuple(out["SCALES"]) == recalibration.SCALES
    assert out["LOG_RANGE"] == pytest.approx(recalibration.LOG_RANGE, abs=1e-12)
    kinds = []
    for fitted, applied, (p, y) in zip(out["fitted"], out["applied"], sets, strict=True):
        adjustment, reason = recalibration.fit(p, y)
        assert reason is None and fitted["reason"] is None
        assert fitted["kind"] == adjustment.kind
        kinds.append(adjustment.kind)
        js = np.array([fitted["bias"][c] for c in CLASSES])
        np.testing.assert_allclose(js, adjustment.bias, atol=2e-6)
        if adjustment.kind == "class-map":
            rows = np.array([[fitted["map"][r][c] for c in CLASSES] for r in CLASSES])
            np.testing.assert_allclose(rows, adjustment.mapping, atol=2e-6)
        assert fitted["scale"] == recalibration.choose(p, y)[1]
        assert fitted["counts"] == {c: int((y == i).sum()) for i, c in enumerate(CLASSES)}
        got = np.array([applied[c] for c in CLASSES])
        np.testing.assert_allclose(got, adjustment.apply(probs3[:1])[0], atol=1e-5)
        assert abs(got.sum() - 1) < 1e-9
    assert kinds == ["class-bias", "class-bias", "class-map"]
    # Classes without frames keep 0; the labelled ones are shifted away from Neutral.
    b = out["fitted"][1]["bias"]
    assert b["Disgust"] == b["Surprise"] == b["Sadness"] == b["Contempt"] == 0
    assert b["Neutral"] < 0 < b["Anger"]


def test_the_map_tells_apart_what_one_bias_per_class_cannot():
    probs, labels = one_look_person(1, 3)  # three frames of each expression calibrate
    later, later_labels = one_look_person(2, 40)  # the same person's later frames
    before = np.mean(later.argmax(1) == later_labels)
    adjustment, reason = recalibration.fit(probs, labels)
    assert reason is None and adjustment.kind == "class-map"
    bias_only, _ = recalibration.fit(probs, labels, allow_map=False)
    after = np.mean(adjustment.apply(later).argmax(1) == later_labels)
    assert before < 0.2 and after > before + 0.4
    assert after > np.mean(bias_only.apply(later).argmax(1) == later_labels) + 0.3
    assert np.abs(adjustment.mapping).max() <= recalibration.BOUND


def test_the_page_fits_on_ten_evenly_spaced_frames_of_each_expression():
    probs, labels = one_look_person(3, 25)
    probs /= probs.sum(axis=1, keepdims=True)
    kept = recalibration.thinned(labels, recalibration.PER_CLASS)
    assert np.bincount(labels[kept]).tolist() == [10] * 8
    assert kept[:10].tolist() == [0, 3, 5, 8, 11, 13, 16, 19, 21, 24]  # first, last, between
    script = f"""
import {{ fitPersonal }} from './site/js/personal.js';
const all = fitPersonal({json.dumps(as_samples(probs, labels))});
const ten = fitPersonal({json.dumps(as_samples(probs[kept], labels[kept]))});
console.log(JSON.stringify({{ all, ten }}));
"""
    out = run_node(script)
    assert out["all"]["bias"] == out["ten"]["bias"] and out["all"].get("map") == out["ten"].get(
        "map"
    )
    assert out["all"]["counts"]["Anger"] == 25  # what was given, not what was kept
    # A deployment's folder is of many people: make recalibrate fits every face.
    full, _ = recalibration.fit(probs, labels, per_class=None)
    assert not np.allclose(full.mapping, recalibration.fit(probs, labels)[0].mapping)


def test_warming_up_the_fit_changes_no_calibration():
    """The page fits made-up frames while the person poses (so the browser has compiled the fit
    before their own); the person's calibration must come out as without it, and the warm-up
    must exercise both kinds' descent."""
    probs, labels = one_look_person(5, 4)
    probs /= probs.sum(axis=1, keepdims=True)
    samples = json.dumps(as_samples(probs, labels))
    script = f"""
import {{ fitPersonal, warmUpFit }} from './site/js/personal.js';
const cold = fitPersonal({samples});
const kind = warmUpFit();
const warmed = fitPersonal({samples});
console.log(JSON.stringify({{ cold, kind, warmed }}));
"""
    out = run_node(script)
    assert out["warmed"] == out["cold"]
    assert out["cold"]["kind"] == "class-map"
    assert out["kind"] in ("class-bias", "class-map")


def test_the_fit_undoes_a_shift_on_new_faces_and_never_hurts_its_own():
    probs, labels = shifted_samples(3, 3)
    adjustment, reason = recalibration.fit(probs, labels)
    assert reason is None
    new_probs, new_labels = shifted_samples(4, 50)
    before = (new_probs.argmax(1) == new_labels).mean()
    after = (adjustment.apply(new_probs).argmax(1) == new_labels).mean()
    assert after > before + 0.1
    own_before = recalibration.mean_recall(probs, labels)
    assert recalibration.mean_recall(adjustment.apply(probs), labels) >= own_before
    assert np.abs(adjustment.bias).max() <= recalibration.BOUND


def test_held_out_frames_decide_how_much_of_the_bias_is_applied():
    # Frames the model reads at random (no shift to learn): any bias fits noise, and the frames
    # held out of each fold show it, so less than the whole bias (here none) is applied.
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(8), 3)
    noise = rng.dirichlet(np.ones(8), len(labels))
    assert recalibration.choose(noise, labels)[1] < 1
    adjustment, reason = recalibration.fit(noise, labels)
    assert reason == "held-out faces were named no better with it"
    assert adjustment.kind == "class-bias" and not adjustment.bias.any()
    # A real shift toward Neutral cross-validates: with five frames each, the whole of it.
    probs, shifted = shifted_samples(3, 5)
    assert recalibration.choose(probs, shifted)[1] == 1
    # The folds: the j-th frame of every class in fold j % FOLDS.
    fold = recalibration.folds(np.array([0, 1, 0, 1, 0, 0, 0, 0, 2]))
    assert fold.tolist() == [0, 0, 1, 1, 2, 3, 4, 0, 0]


def test_the_page_shrinks_as_the_server_does():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(8), 3)
    noise = np.round(rng.dirichlet(np.ones(8), len(labels)), 6)
    noise /= noise.sum(axis=1, keepdims=True)
    script = f"""
import {{ fitPersonal }} from './site/js/personal.js';
console.log(JSON.stringify(fitPersonal({json.dumps(as_samples(noise, labels))})));
"""
    out = run_node(script)
    adjustment, reason = recalibration.fit(noise, labels)
    assert out["scale"] == recalibration.choose(noise, labels)[1] < 1
    np.testing.assert_allclose([out["bias"][c] for c in CLASSES], adjustment.bias, atol=2e-6)
    assert (out["reason"] is None) == (reason is None)


def test_the_fit_falls_back_to_the_identity_and_says_why():
    script = """
import { fitPersonal } from './site/js/personal.js';
const one = (c) => Object.fromEntries(['Anger','Disgust','Surprise','Sadness','Happiness',
  'Neutral','Contempt','Fear'].map((k) => [k, k === c ? 0.93 : 0.01]));
// One expression only: nothing to reorder.
const single = fitPersonal([{ predictions: one('Neutral'), label: 'Anger' }]);
// Frames the model already names perfectly with a margin: the fit may not make them worse.
const perfect = fitPersonal([
  { predictions: one('Anger'), label: 'Anger' }, { predictions: one('Fear'), label: 'Fear' },
]);
console.log(JSON.stringify({ single, perfect }));
"""
    out = run_node(script)
    assert out["single"]["identity"] is True and "two expressions" in out["single"]["reason"]
    assert out["perfect"]["frames"]["after"] >= out["perfect"]["frames"]["before"] == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("fitPersonal([])", "non-empty list"),
        ("fitPersonal('x')", "non-empty list"),
        ("fitPersonal([{ predictions: P, label: 'Joy' }])", 'unknown label "Joy"'),
        ("fitPersonal([{ predictions: { ...P, Joy: 0 }, label: 'Anger' }])", 'unknown class "Joy"'),
        ("fitPersonal([{ predictions: { ...P, Anger: NaN }, label: 'Anger' }])", "Anger must be"),
        ("fitPersonal([{ predictions: { ...P, Anger: 0.9 }, label: 'Anger' }])", "sum to"),
        ("applyPersonal(null, { Anger: 1 })", "Disgust must be"),
        ("applyPersonal({ kind: 'class-bias', bias: { Joy: 1 } }, P)", 'unknown class "Joy"'),
        ("applyPersonal({ kind: 'class-bias', bias: { Anger: 99 } }, P)", "within"),
        ("applyPersonal({ bias: {} }, P)", "Not a calibration"),
        ("applyPersonal({ kind: 'class-map', bias: {} }, P)", "no map values"),
        (
            "applyPersonal({ kind: 'class-map', bias: {}, map: { Joy: {} } }, P)",
            'unknown class "Joy"',
        ),
        (
            "applyPersonal({ kind: 'class-map', bias: {}, map: { Fear: { Anger: 9 } } }, P)",
            "map Fear",
        ),
    ],
)
def test_bad_input_throws_a_clear_error(call, message):
    script = f"""
import {{ fitPersonal, applyPersonal }} from './site/js/personal.js';
const P = {{ Anger: 0.3, Disgust: 0.1, Surprise: 0.1, Sadness: 0.1, Happiness: 0.1,
  Neutral: 0.1, Contempt: 0.1, Fear: 0.1 }};
try {{ {call}; console.log(JSON.stringify({{ threw: false }})); }}
catch (e) {{ console.log(JSON.stringify({{ threw: e instanceof Error, message: e.message }})); }}
"""
    out = run_node(script)
    assert out["threw"] is True
    assert message in out["message"]


@pytest.fixture(scope="module")
def recalibrated(tmp_path_factory) -> Path:
    """The shipped model with a card that shifts every answer toward Neutral."""
    folder = tmp_path_factory.mktemp("recalibrated")
    shutil.copyfile(MODEL, folder / "emotion.onnx")
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["recalibration"] = {"id": "recal-test", "bias": {"Neutral": 3.0, "Happiness": -1.0}}
    (folder / "emotion.json").write_text(json.dumps(card))
    return folder / "emotion.onnx"


def test_the_server_applies_the_cards_recalibration_and_names_it(
    recalibrated, settings, model, detector
):
    shifted = EmotionModel(recalibrated)
    client = TestClient(create_app(settings, shifted, detector))
    png = encode(astronaut_face().resize((96, 96)))
    answer = client.post("/face", content=png, headers={"Content-Type": "image/png"}).json()
    plain = TestClient(create_app(settings, model, detector))
    raw = plain.post("/face", content=png, headers={"Content-Type": "image/png"}).json()
    bias = np.array([{"Neutral": 3.0, "Happiness": -1.0}.get(c, 0.0) for c in CLASSES])
    p = np.array([raw["predictions"][c] for c in CLASSES])
    expected = recalibration.adjust(p, bias)
    got = np.array([answer["predictions"][c] for c in CLASSES])
    np.testing.assert_allclose(got, expected, atol=5e-5)  # answers are rounded
    assert answer["model"].endswith("+recal-test") and raw["model"] == model.card.label
    assert client.get("/health").json()["model"] == answer["model"]


def test_a_card_with_a_bad_recalibration_stops_the_server(tmp_path, settings, detector):
    shutil.copyfile(MODEL, tmp_path / "emotion.onnx")
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["recalibration"] = {"id": "x", "bias": {"Joy": 1.0}}
    (tmp_path / "emotion.json").write_text(json.dumps(card))
    from dataclasses import replace

    with pytest.raises(SystemExit, match="Joy"):
        create_app(replace(settings, model_path=tmp_path / "emotion.onnx"), None, detector)


def test_the_server_applies_a_cards_map(tmp_path, settings, model, detector):
    shutil.copyfile(MODEL, tmp_path / "emotion.onnx")
    card = json.loads(MODEL.with_suffix(".json").read_text())
    # The less the face looks like Contempt and Fear (u near -1), the more Neutral it is read.
    block = {"bias": {"Neutral": 1.0}, "map": {"Neutral": {"Contempt": -3.0, "Fear": -2.0}}}
    card["recalibration"] = {"id": "recal-map", "kind": "class-map", **block}
    (tmp_path / "emotion.json").write_text(json.dumps(card))
    png = encode(astronaut_face().resize((96, 96)))
    mapped = TestClient(create_app(settings, EmotionModel(tmp_path / "emotion.onnx"), detector))
    answer = mapped.post("/face", content=png, headers={"Content-Type": "image/png"}).json()
    plain = TestClient(create_app(settings, model, detector))
    raw = plain.post("/face", content=png, headers={"Content-Type": "image/png"}).json()
    p = np.array([raw["predictions"][c] for c in CLASSES])
    bias = np.array([1.0 if c == "Neutral" else 0.0 for c in CLASSES])
    mapping = np.zeros((8, 8))
    mapping[CLASSES.index("Neutral"), CLASSES.index("Contempt")] = -3.0
    mapping[CLASSES.index("Neutral"), CLASSES.index("Fear")] = -2.0
    expected = recalibration.adjust(p, bias, mapping)
    got = np.array([answer["predictions"][c] for c in CLASSES])
    # `expected` starts from the answer's probabilities, rounded to 6 decimals, and the map
    # reads their logarithms: a class the model gives 1.6e-4 carries a 0.3% error into it
    # (1e-4 on Neutral here, with the 2026-12-07 model)
    np.testing.assert_allclose(got, expected, atol=3e-4)
    assert got[CLASSES.index("Neutral")] > p[CLASSES.index("Neutral")] + 0.05
    card["recalibration"]["map"] = {"Joy": {"Fear": 1.0}}
    (tmp_path / "emotion.json").write_text(json.dumps(card))
    from dataclasses import replace

    with pytest.raises(SystemExit, match="Joy"):
        create_app(replace(settings, model_path=tmp_path / "emotion.onnx"), None, detector)
