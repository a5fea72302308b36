"""The learned red-flag detector: out-of-author threshold choice, sealed save/load, evidence in
the engine's report, the training command, and the bundled classifier on texts no rule catches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medai.cli import app
from medai.core.model_dir import ModelLoadError, file_sha256
from medai.triage.red_flags import build_engine, learn, load_rules
from medai.triage.red_flags.classifier import RedFlagClassifier
from medai.triage.red_flags.engine import CLASSIFIER_DIR, RedFlagEngine
from medai.triage.red_flags.schema import DATA_DIR

URGENT = {
    "a": [
        ("babam yere yığıldı gözlerini açmıyor", "altered_consciousness"),
        ("annem kendinden geçti seslenince tepki yok", "altered_consciousness"),
        ("oğlum deterjan içmiş ağzı yanıyor", "poisoning_overdose"),
        ("kızım kutudaki bütün hapları yutmuş", "poisoning_overdose"),
        ("dedemin dudakları morardı hırıltıyla soluyor", "respiratory_distress"),
        ("eşim lokma kaçırdı boğuluyor", "respiratory_distress"),
    ],
    "b": [
        ("teyzem bayılıp kaldı uyandıramıyoruz", "altered_consciousness"),
        ("babaannem yerde yatıyor cevap vermiyor", "altered_consciousness"),
        ("çocuk çamaşır suyunu içti kusuyor", "poisoning_overdose"),
        ("yeğenim ilaç kutusunu boşaltmış hepsini içmiş", "poisoning_overdose"),
        ("amcamın yüzü mosmor nefes alamıyor", "respiratory_distress"),
        ("kızım boğazına şeker kaçtı soluk alamıyor", "respiratory_distress"),
    ],
}
ORDINARY = {
    "a": [
        "yüzümde sivilceler var krem önerir misiniz",
        "dizim merdivende ağrıyor",
        "saçlarım dökülüyor vitamin almalı mıyım",
        "kulağım kaşınıyor",
        "göğüs ağrım yok sadece öksürüğüm var",
        "sırtımda ben var kontrol ettirmeli miyim",
    ],
    "b": [
        "ayağımda mantar var ne sürmeliyim",
        "boynum tutuldu yastık önerir misiniz",
        "gözlerim kuruyor damla kullanabilir miyim",
        "midem yanıyor yemekten sonra",
        "nefes darlığım yok ama horluyorum",
        "tırnaklarım kırılıyor",
    ],
}


def write_sets(folder: Path, sets=("a", "b")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in sets:
        with (folder / f"{s}_urgent.jsonl").open("w", encoding="utf-8") as fh:
            for i, (text, flag) in enumerate(URGENT[s]):
                fh.write(
                    json.dumps(
                        {"id": f"{s}-u-{i}", "text": text, "urgent": True, "presentation": flag},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        with (folder / f"{s}_ordinary.jsonl").open("w", encoding="utf-8") as fh:
            for i, text in enumerate(ORDINARY[s]):
                fh.write(
                    json.dumps(
                        {"id": f"{s}-o-{i}", "text": text, "urgent": False, "presentation": None},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, learn.Trained]:
    folder = write_sets(tmp_path_factory.mktemp("sets"))
    trained = learn.train_with_choice(load_rules(), learn.read_sets(folder), None, 0.2)
    return folder, trained


def test_threshold_is_chosen_out_of_author(tiny):
    _folder, trained = tiny
    # every set was scored by a classifier that never saw it: one score per row, each set
    assert {k: len(v) for k, v in trained.out_of_author.items()} == {"a": 12, "b": 12}
    c = trained.choice
    assert c["false_alarm_rate"] <= 0.2 and trained.model.threshold == c["classifier"]
    assert trained.model.labels[0] == "none" and "poisoning_overdose" in trained.model.labels


def test_save_load_round_trip_and_seal(tiny, tmp_path):
    _folder, trained = tiny
    out = tmp_path / "clf"
    trained.model.save(out, {"name": "tiny"})
    loaded = RedFlagClassifier.load(out)
    texts = ["kızım bütün hapları içmiş", "dizim ağrıyor", ""]
    feats = [a.features for a in learn.analyse_rows(load_rules(), texts)]
    assert np.allclose(loaded.probabilities(feats), trained.model.probabilities(feats), atol=1e-6)
    assert loaded.threshold == trained.model.threshold and loaded.labels == trained.model.labels
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="differ"):
        RedFlagClassifier.load(out)


def test_engine_names_the_classifier_and_its_evidence(tiny):
    _folder, trained = tiny
    model = trained.model
    model_low = RedFlagClassifier(
        model.labels, model.vectorizers, model.coef, model.intercept, 0.05, model.params
    )
    engine = RedFlagEngine(load_rules(), classifier=model_low)
    text = "Dün akşamdan beri kızım bütün hapları yutmuş olabilir"
    report = engine.check(text)
    assert "classifier" in engine.detectors
    fired = [f for f in report.flags if "classifier" in f.detectors]
    assert fired, report.to_dict()
    ev = next(e for e in fired[0].evidence if e.detector == "classifier")
    assert ev.score >= 0.05 and ev.text
    assert all(part in text for part in ev.text.split(" … "))


def test_read_sets_refuses_bad_rows(tmp_path):
    write_sets(tmp_path)
    (tmp_path / "c_urgent.jsonl").write_text('{"text": "ateşim var", "urgent": true}\n')
    with pytest.raises(learn.TrainingDataError, match="presentation"):
        learn.read_sets(tmp_path)
    (tmp_path / "c_urgent.jsonl").write_text('{"text": "x", "urgent": false}\n')
    with pytest.raises(learn.TrainingDataError, match="disagrees"):
        learn.read_sets(tmp_path)
    (tmp_path / "c_urgent.jsonl").write_text("not json\n")
    with pytest.raises(learn.TrainingDataError, match="not JSON"):
        learn.read_sets(tmp_path)


@pytest.mark.slow  # trains classifiers (~10-20 s): make test, not the daily loop
def test_training_command_writes_a_servable_classifier(tmp_path):
    folder = write_sets(tmp_path / "sets")
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copy(DATA_DIR / name, rules / name)
    out = rules / CLASSIFIER_DIR
    r = CliRunner().invoke(
        app,
        [
            "triage",
            "train-red-flags",
            "--data",
            str(folder),
            "--out",
            str(out),
            "--no-embeddings",
            "--max-false-alarms",
            "0.2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["sets"] == {"a": 12, "b": 12} and 0 < result["chosen"]["classifier"] < 1
    engine = build_engine(rules, embeddings=False)  # the hospital's folder serves its own
    assert engine.classifier is not None and engine.classifier.params["sets"] == {"a": 12, "b": 12}


def test_training_command_needs_two_authors(tmp_path):
    folder = write_sets(tmp_path / "sets", sets=("a",))
    r = CliRunner().invoke(
        app,
        [
            "triage",
            "train-red-flags",
            "--data",
            str(folder),
            "--out",
            str(tmp_path / "clf"),
            "--no-embeddings",
            "--json",
        ],
    )
    assert r.exit_code != 0 and "at least two sets" in r.output


BUNDLED_URGENT = [
    (
        "annemin dudakları mosmor oldu, konuşurken kelimeleri yutuyor, nefesi yetmiyor",
        "respiratory_distress",
    ),
    ("kocam elinde bıçakla komşuyu bitireceğini söyleyip çıktı", "harm_to_others"),
    ("dedem az önce kendini kaybetti, sarsıyoruz ama gözlerini açmıyor", "altered_consciousness"),
    ("kızım kapıyı kilitledi, veda mektubu yazmış, hap kutuları boş", "suicidal"),
    ("bebeğim 6 haftalık, sabahtan beri emmiyor, çok uykulu ve ateşi var", "infant_child"),
    ("hamileyim 8 aylık, bebek bugün hiç kıpırdamadı", "pregnancy_emergency"),
    ("oğlumun gözüne kireç kaçtı, açamıyor", "eye_emergency"),
    ("babam merdivenden kafa üstü düştü, iki kere kustu, uyuklayıp duruyor", "head_injury"),
    ("amcamın sol tarafı tutmuyor, ağzı yamuldu", "stroke"),
]
BUNDLED_ORDINARY = [
    "göğüs ağrım yok, sadece sırtımda kas ağrısı var",
    "3 yıl önce kalp krizi geçirdim, şimdi kontrollerim normal, spor yapabilir miyim",
    "inme belirtileri nelerdir, annem için merak ediyorum",
    "ateşi yok, ensesi sert değil, sadece burnu akıyor",
    "10 yıldır astımım var, spreyimi düzenli kullanıyorum, reçete yenilemek istiyorum",
    "çocukken bir kere havale geçirmişim, ehliyet alabilir miyim",
]


@pytest.fixture(scope="module")
def bundled_engine():
    engine = build_engine(embeddings=False)
    assert engine.classifier is not None, "the bundled classifier is missing"
    return engine


@pytest.mark.parametrize("text,flag", BUNDLED_URGENT)
def test_bundled_classifier_names_the_presentation(bundled_engine, text, flag):
    """Sentences written for this test (in no training set): the classifier on its own raises
    the presentation's flag."""
    flags = {f.id: f for f in bundled_engine.check(text).flags}
    assert flag in flags and "classifier" in flags[flag].detectors, flags
    ev = next(e for e in flags[flag].evidence if e.detector == "classifier")
    assert ev.score >= bundled_engine.classifier.threshold


@pytest.mark.parametrize("text", BUNDLED_ORDINARY)
def test_bundled_classifier_stays_quiet_on_denied_past_and_worried(bundled_engine, text):
    assert bundled_engine.check(text).flags == []


def test_bundled_classifier_is_sealed_and_carries_its_operating_point(bundled_engine):
    model = RedFlagClassifier.load(DATA_DIR / CLASSIFIER_DIR)  # checks the content hash
    # every report names the exact classifier that judged it
    named = bundled_engine.check("dizim ağrıyor").classifier
    assert named == model.identity and named["content_hash"].startswith("sha256:")
    assert 0 < model.threshold < 1 and set(model.knn) == {"threshold", "margin"}
    assert len(model.params["sets"]) >= 2 and not any(
        s.startswith("test") for s in model.params["sets"]
    )


REAL_POSTS = [  # forum questions about pills the patient was prescribed: no emergency in them
    "hocam doktorum bu hapları içmemi söyledi, bir haftadır içiyorum, ne zaman etki eder",
    "merhaba ilaçlarımı hep içtim ama kutusu bitti, reçete yenilemek için mi gelmeliyim",
    "hapları sabah mı akşam mı içmeliyim, doktorum söylemeyi unuttu",
    "annemin tansiyon haplarını içmesi gerekiyor, aç karnına mı içmeli",
    "vitamin haplarını içmeye başladım saçlarım için, zararı var mı",
    "antibiyotik haplarının hepsini içtim ama boğazım hala ağrıyor",
] * 3


def test_real_posts_are_split_by_a_stable_hash_of_their_id():
    ids = [f"tr{n:05d}" for n in range(4000)]
    parts = [learn.real_part(i) for i in ids]
    assert parts == [learn.real_part(i) for i in ids]  # the same on every call and run
    share = {p: parts.count(p) / len(parts) for p in set(parts)}
    assert set(share) == {"train", "validation", "report"}
    assert abs(share["train"] - 0.5) < 0.03 and abs(share["report"] - 0.25) < 0.03
    # pinned: a salted or platform-dependent hash would move posts between parts across runs
    assert parts[:3] == ["train", "report", "validation"]


def test_read_real_posts_reads_ids_and_refuses_a_file_without_text(tmp_path):
    f = tmp_path / "posts.csv"
    f.write_text(
        'id,text,label\nq1,"dizim ağrıyor, ne yapmalıyım",ortopedi\nq2,,x\n', encoding="utf-8-sig"
    )  # Excel writes a byte-order mark
    assert learn.read_real_posts(f) == [("q1", "dizim ağrıyor, ne yapmalıyım")]
    # without an id a post is known by its text: re-sorting the file never moves it
    f.write_text("text\nbaşım ağrıyor\nkulağım çınlıyor\n", encoding="utf-8")
    g = tmp_path / "sorted.csv"
    g.write_text("text\nkulağım çınlıyor\nbaşım ağrıyor\n", encoding="utf-8")
    assert sorted(learn.read_real_posts(f)) == sorted(learn.read_real_posts(g))
    f.write_text(
        "id,text\nq1,başım ağrıyor\n".encode("cp1254").decode("latin-1"), encoding="latin-1"
    )  # a Windows-Turkish file
    with pytest.raises(learn.TrainingDataError, match=r"posts\.csv: not a readable UTF-8"):
        learn.read_real_posts(f)
    with pytest.raises(learn.TrainingDataError, match="not a readable"):
        learn.read_real_posts(tmp_path)  # a folder
    f.write_text("soru,etiket\nbaşım ağrıyor,nöroloji\n", encoding="utf-8")
    with pytest.raises(learn.TrainingDataError, match=r"needs a 'text' column.*soru, etiket"):
        learn.read_real_posts(f)
    with pytest.raises(learn.TrainingDataError, match="over"):
        learn.read_real_posts(f, max_bytes=10)


def test_real_posts_the_rules_fire_on_are_not_learned_as_negatives():
    urgent_post = "babam yere yığıldı, gözlerini açmıyor, seslenince tepki yok"
    real = learn.RealNegatives.read(load_rules(), [urgent_post, REAL_POSTS[0]])
    assert [a.features.active for a in real.analysed] == [
        learn.analyse_rows(load_rules(), [REAL_POSTS[0]])[0].features.active
    ]


@pytest.mark.slow  # trains classifiers (~10-20 s): make test, not the daily loop
def test_real_negatives_teach_the_classifier_the_forum_register(tmp_path):
    """A forum question about prescribed pills looks like the overdose texts to a classifier
    that read only written complaints; learning real posts as negatives lowers its score."""
    sets = learn.read_sets(write_sets(tmp_path))
    question = "hocam bana yazılan hapları içtim, bir haftadır kullanıyorum, ne zaman etki eder"
    scores, vocabularies = {}, {}
    for name, posts in {"without": None, "with": REAL_POSTS}.items():
        trained = learn.train_with_choice(load_rules(), sets, None, 0.2, real_posts=posts)
        feats = learn.analyse_rows(load_rules(), [question])[0].features
        scores[name] = trained.model.score(feats).score
        vocabularies[name] = {k: set(v.vocabulary_) for k, v in trained.model.vectorizers.items()}
        assert (trained.real is not None) == bool(posts)
    assert scores["with"] < scores["without"] - 0.05, scores
    # the saved vocabulary holds the written texts' n-grams only, none of the real posts'
    assert vocabularies["with"] == vocabularies["without"]
    # two of the six posts ("hapların hepsini içtim") set the overdose rule off: left out
    assert trained.model.params["real_negatives"] == {"posts": 18, "used": 12, "weight": 0.25}


@pytest.mark.slow  # trains classifiers (~10-20 s): make test, not the daily loop
def test_training_command_learns_real_posts_from_their_training_part(tmp_path):
    folder = write_sets(tmp_path / "sets")
    posts = tmp_path / "posts.csv"
    ids = [f"p{n}" for n in range(len(REAL_POSTS))]
    lines = "".join(f'{i},"{t}"\n' for i, t in zip(ids, REAL_POSTS, strict=True))
    posts.write_text("id,text\n" + lines, encoding="utf-8")
    out = tmp_path / "clf"
    r = CliRunner().invoke(
        app,
        [
            "triage",
            "train-red-flags",
            "--data",
            str(folder),
            "--out",
            str(out),
            "--no-embeddings",
            "--max-false-alarms",
            "0.2",
            "--real-posts",
            str(posts),
            "--real-weight",
            "0.5",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    train = [t for i, t in zip(ids, REAL_POSTS, strict=True) if learn.real_part(i) == "train"]
    n_train, quiet = len(train), sum(not a.rules for a in learn.analyse_rows(load_rules(), train))
    assert 0 < n_train < len(ids)
    params = RedFlagClassifier.load(out).params["real_negatives"]
    assert params == {"posts": n_train, "used": quiet, "weight": 0.5}
    card = json.loads((out / "model_card.json").read_text())
    assert {
        "real_posts": "posts.csv",
        "rows": n_train,
        "part": "train (learn.real_part)",
        "sha256": file_sha256(posts),
    } in card["data"]
    for bad in (tmp_path / "missing.csv", tmp_path):  # no such file; a folder
        r = CliRunner().invoke(
            app,
            [
                "triage",
                "train-red-flags",
                "--data",
                str(folder),
                "--out",
                str(tmp_path / "clf2"),
                "--no-embeddings",
                "--real-posts",
                str(bad),
                "--json",
            ],
        )
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert not (tmp_path / "clf2").exists()


def test_vocabulary_rows_keep_later_rows_out_of_the_vocabulary():
    from medai.triage.red_flags.classifier import NONE, train

    rows = learn.analyse_rows(load_rules(), [t for t, _f in URGENT["a"]] + ORDINARY["a"] * 2)
    ys = [f for _t, f in URGENT["a"]] + [NONE] * (2 * len(ORDINARY["a"]))
    extra = learn.analyse_rows(load_rules(), ["zıpkınlı balıkçı zıpkınlı balıkçı"] * 3)
    feats = [a.features for a in rows + extra]
    model = train(feats, ys + [NONE] * 3, vocabulary_rows=len(rows))
    word = extra[0].features.words.split()[0]  # the normalised form of "zıpkınlı"
    assert word not in model.vectorizers["word"].vocabulary_
    assert word in train(feats, ys + [NONE] * 3).vectorizers["word"].vocabulary_


def test_rows_after_the_vocabulary_rows_do_not_weigh_the_written_rows_more():
    """Real rows of (almost) no weight change nothing: each half weighs half the written rows,
    not half of all rows (which acted like a larger C on the written texts)."""
    from medai.triage.red_flags.classifier import NONE, train

    rows = learn.analyse_rows(load_rules(), [t for t, _f in URGENT["a"]] + ORDINARY["a"])
    ys = [f for _t, f in URGENT["a"]] + [NONE] * len(ORDINARY["a"])
    extra = learn.analyse_rows(load_rules(), ORDINARY["b"] * 10)
    feats = [a.features for a in rows]
    alone = train(feats, ys, c=1.0)
    weight = np.r_[np.ones(len(rows)), np.full(len(extra), 1e-9)]
    with_extra = train(
        feats + [a.features for a in extra],
        ys + [NONE] * len(extra),
        c=1.0,
        sample_weight=weight,
        vocabulary_rows=len(rows),
    )
    np.testing.assert_allclose(with_extra.coef, alone.coef, atol=2e-3)


def test_out_of_author_scores_in_parallel_equal_the_serial_ones():
    rules = load_rules()
    sets = {k: learn.analyse_rows(rules, [t for t, _f in URGENT[k]] + ORDINARY[k]) for k in URGENT}
    labels = {k: [f for _t, f in URGENT[k]] + [learn.NONE] * len(ORDINARY[k]) for k in URGENT}
    serial = learn.out_of_author_scores(sets, labels, [], [])
    parallel = learn.out_of_author_scores(sets, labels, [], [], jobs=2)
    assert list(parallel) == list(serial)
    for k in serial:
        np.testing.assert_allclose(parallel[k], serial[k], rtol=1e-6)


def test_every_concept_the_bundled_classifier_learned_is_still_read():
    """The classifier's features include the concepts the rules found (``c:``/``p:``): a concept
    renamed or removed from concepts.yaml silently drops weights it learned (removing four
    'now' lists without retraining cost it five blind urgent texts, 2026-11-25)."""
    import json

    from medai.triage.red_flags import load_rules
    from medai.triage.red_flags.schema import DATA_DIR

    words = json.loads((DATA_DIR / "classifier" / "vocabulary.json").read_text())["word"]
    learned = {t[2:] for w in words for t in w.split() if t[:2] in ("c:", "p:")}
    assert learned, "the bundled classifier reads no concept"
    known = set(load_rules().concepts)
    assert learned <= known, (
        f"concepts the classifier learned but the rules no longer read: {sorted(learned - known)}"
    )


def test_train_only_kinds_are_not_counted_in_the_false_alarm_budget():
    # 10 urgent texts scoring 0.5..0.95; 20 everyday texts scoring low; 20 idioms scoring 0.6:
    # counted, the idioms push the threshold above them and lose urgent texts; not counted,
    # the lowest threshold within budget keeps every urgent text.
    urgent = np.array([True] * 10 + [False] * 40)
    scores = np.concatenate([np.linspace(0.5, 0.95, 10), np.full(20, 0.1), np.full(20, 0.6)])
    idiom = np.array([False] * 30 + [True] * 20)
    none = np.zeros(50, bool)
    all_counted = learn.choose_threshold(urgent, none, scores, 0.05)
    everyday = learn.choose_threshold(urgent, none, scores, 0.05, budget=~idiom)
    assert all_counted["threshold"] > 0.6 and all_counted["recall"] < 1.0
    assert everyday["threshold"] <= 0.5 and everyday["recall"] == 1.0
    assert everyday["false_alarm_rate"] == 0.0  # of the 20 everyday texts, none fire


@pytest.mark.slow  # trains classifiers (~10-20 s): make test, not the daily loop
def test_training_records_which_kinds_were_left_out_of_the_budget(tmp_path):
    folder = write_sets(tmp_path)
    sets = learn.read_sets(folder)
    next(r for r in sets["a"] if not r["urgent"])["kind"] = "idiom"
    trained = learn.train_with_choice(load_rules(), sets, None, 0.2)
    assert trained.model.params["budget_excludes"] == {"kinds": ["idiom"], "rows": 1}


def test_the_budget_mask_follows_the_short_and_long_split():
    # long texts: 60 urgent, 60 counted ordinary; short: 60 urgent, 60 everyday, 60 idioms that
    # score like the weakest urgent ones. Counted, the idioms push the short threshold above
    # them; left out, the short threshold keeps every short urgent text, and the card says how
    # often the left-out rows fire.
    rng = np.random.default_rng(0)
    long_u, long_o = rng.uniform(0.6, 0.9, 60), rng.uniform(0.0, 0.1, 60)
    short_u, short_o, idioms = (
        rng.uniform(0.5, 0.9, 60),
        rng.uniform(0.0, 0.1, 60),
        np.full(60, 0.55),
    )
    scores = np.concatenate([long_u, long_o, short_u, short_o, idioms])
    urgent = np.array([True] * 60 + [False] * 60 + [True] * 60 + [False] * 120)
    short = np.array([False] * 120 + [True] * 180)
    budget = np.array([True] * 240 + [False] * 60)
    rules = np.zeros(300, bool)
    counted = learn.choose_with_short(urgent, rules, None, scores, short, 0.04)
    left_out = learn.choose_with_short(urgent, rules, None, scores, short, 0.04, budget)
    assert counted["short"]["threshold"] > 0.55 > left_out["short"]["threshold"]
    assert left_out["short"]["recall"] == 1.0 and counted["short"]["recall"] < 1.0
    assert left_out["short"]["uncounted_false_alarm_rate"] == 1.0  # every idiom fires
    assert left_out["short"]["uncounted_rows"] == 60
    assert "uncounted_false_alarm_rate" not in left_out  # the long texts have none left out
    assert left_out["classifier"] == counted["classifier"]


def test_a_named_kind_that_no_row_has_is_refused_before_training(tmp_path):
    sets = learn.read_sets(write_sets(tmp_path))
    with pytest.raises(learn.TrainingDataError, match="no ordinary row is of kind idoim"):
        learn.train_with_choice(
            load_rules(), sets, None, 0.2, train_only_kinds=frozenset({"idoim"})
        )
    for rows in sets.values():
        for r in rows:
            r["kind"] = "idiom"
    with pytest.raises(learn.TrainingDataError, match="nothing to count"):
        learn.train_with_choice(load_rules(), sets, None, 0.2)
