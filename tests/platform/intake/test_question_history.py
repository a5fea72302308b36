"""A history in a study's clinical question is not an acute sign (issue 67 §7): "Sol hemiparezi
öyküsü" raised the stroke red flag and ranked the study urgent. Through the API: the upload
names no question red flag and the worklist does not rank it for one; a new episode told beside
the same history still does."""

from __future__ import annotations

from helpers.platform import bearer, clinic, png_bytes

HISTORY = "Sol hemiparezi öyküsü, kontrol BT"
ACUTE = "Sol hemiparezi öyküsü, bugün yeni gelişen sağ hemiparezi"


def test_a_history_in_the_question_does_not_rank_the_study_urgent(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (_app, client):
        rad = bearer(client, "rad1")

        def upload(seed: int, question: str) -> dict:
            r = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": "cxr", "clinical_question": question},
                files={"file": ("x.png", png_bytes(seed), "image/png")},
            )
            assert r.status_code == 201, r.text
            return r.json()

        history, acute = upload(1, HISTORY), upload(2, ACUTE)
        assert not [r for r in history["urgent_because"] if r["code"] == "question_red_flag"]
        assert [r["rule"] for r in acute["urgent_because"]] == ["stroke"]
        flagged = client.get("/api/v1/studies", headers=rad, params={"red_flag": True}).json()
        assert [s["id"] for s in flagged["items"]] == [acute["id"]]
        page = client.get("/api/v1/studies", headers=rad).json()["items"]
        by_id = {s["id"]: s["reading"] for s in page}
        assert by_id[history["id"]]["request"] == {"red_flag": False, "rules": [], "stat": False}
        assert by_id[history["id"]]["rank"] != "red_flag"
        assert by_id[acute["id"]]["request"]["red_flag"] is True
