"""What a draft says of the series it was read from (issue 67), in English and Turkish: slices
that suggest a tumour but were too few for the AI to decide (where they are and why it did not
decide), and every series of the study, read or not (and why not).

The words come from the result's ``read`` (``imaging.results.ReadInfo``): ``undecided_slices``
and ``series``. Slice numbers are the viewer's ("10 / 20"), so the reader finds them at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medai.reporting.phrases import phrase

# the slices that keep a series from reading "no tumour", and why the AI did not decide
SMALL_LESION = (
    "Findings suggesting {label} on {where}; too few for the AI's decision rule ({needed} "
    "neighbouring slices needed), so the AI did not decide — radiologist assessment required.",
    "{where} {label} lehine bulgu; YZ'nin karar kuralı için yetersiz ({needed} komşu kesit "
    "gerekir), YZ karar vermedi — radyolog değerlendirmeli.",
)
NEIGHBOURING = ("{n} neighbouring slices ({span})", "{n} komşu kesitte ({span})")
SCATTERED = ("{n} slices ({span})", "{n} kesitte ({span})")
ONE_SLICE = ("one slice ({span})", "bir kesitte ({span})")
# the study's series: how many the AI read, which one its decision came from, and each one it
# did not read with why
READ_SERIES = (
    "The AI read {read} of the study's {total} series; its result comes from {decides}.",
    "YZ incelemenin {total} serisinden {read} seriyi değerlendirdi; sonuç {decides} üzerinden.",
)
SERIES_NAME = ("series {number}", "seri {number}")
NOT_READ = ("{series} was not read by the AI: {why}.", "{series} YZ tarafından okunmadı: {why}.")
WHY = {
    "localizer": ("a localizer (planning) series", "lokalizör (planlama) serisi"),
    "too_many_series": (
        "the study has more series than the AI reads; the largest were read",
        "incelemede YZ'nin okuduğundan fazla seri var; en büyükleri okundu",
    ),
    "wrong_modality": ("not an examination the model reads", "modelin okuduğu inceleme değil"),
    "out_of_distribution": (
        "unlike the images the model was trained on",
        "modelin eğitildiği görüntülere benzemiyor",
    ),
    "colour_photo": ("a colour image", "renkli görüntü"),
    "unreadable": ("its images could not be read", "görüntüleri okunamadı"),
    "no_image": ("it holds no image", "görüntü içermiyor"),
    "too_small": ("its images are too small", "görüntüleri çok küçük"),
}
OTHER_REASON = ("the model could not read it", "model okuyamadı")


def _i(lang: str) -> int:
    return 1 if lang == "tr" else 0


def _span(numbers: Sequence[int]) -> tuple[str, bool]:
    """ "10–11" for neighbouring slices, "4, 11" otherwise; whether they neighbour."""
    numbers = sorted(numbers)
    contiguous = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    if contiguous and len(numbers) > 1:
        return f"{numbers[0]}–{numbers[-1]}", True
    return ", ".join(map(str, numbers)), contiguous


def slices_where(undecided: Mapping[str, Any], lang: str) -> str:
    """Where a small lesion's slices are: "2 komşu kesitte (10–11)", "one slice (7)"."""
    numbers = [int(n) for n in undecided.get("numbers") or [] if n]
    span, neighbouring = _span(numbers) if numbers else ("", True)
    n = len(numbers)
    return (ONE_SLICE if n == 1 else NEIGHBOURING if neighbouring else SCATTERED)[_i(lang)].format(
        n=n, span=span
    )


def small_lesion_sentence(undecided: Mapping[str, Any], task: str, lang: str) -> str:
    """Where the slices suggesting a finding are, and why the AI left the series undecided."""
    i = _i(lang)
    where = slices_where(undecided, lang)
    text = SMALL_LESION[i].format(
        label=phrase(str(undecided.get("label")), lang, task),
        where=where,
        needed=undecided.get("needed") or 1,
    )
    return text[:1].upper() + text[1:]


def _series_name(account: Mapping[str, Any], lang: str) -> str:
    i = _i(lang)
    number = account.get("series_number")
    name = (
        SERIES_NAME[i].format(number=number)
        if number is not None
        else SERIES_NAME[i].format(number="?")
    )
    description = account.get("description")
    return f"{name} ({description})" if description else name


def series_sentences(accounts: Sequence[Mapping[str, Any]], lang: str) -> list[str]:
    """For a study of more than one series: how many the AI read and which one its result comes
    from, and each series it did not read, named with why. Nothing for a single series."""
    if len(accounts) < 2:
        return []
    i = _i(lang)
    read = [a for a in accounts if a.get("read")]
    decides = next((a for a in read if a.get("decides")), None)
    out = []
    if decides is not None:
        out.append(
            READ_SERIES[i].format(
                read=len(read), total=len(accounts), decides=_series_name(decides, lang)
            )
        )
    for a in accounts:
        if a.get("read"):
            continue
        why = WHY.get(str(a.get("reason")), OTHER_REASON)[i]
        sentence = NOT_READ[i].format(series=_series_name(a, lang), why=why)
        out.append(sentence[:1].upper() + sentence[1:])
    return out
