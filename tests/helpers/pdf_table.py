"""A table in a PDF read back by row and column, from where its text is drawn.

A PDF's flattened text runs one row into the next: a pattern for "COVID-19 … yok" once matched
"Bulgu yok" of one row and "(COVID-19 nedeniyle)" of another, failing a property test for no
real contradiction. Reading each text fragment's position instead gives every cell to its row
and column, so a test compares the decision cell of the label's own row.
"""

from __future__ import annotations

import io

from pypdf import PdfReader

# how far (points) a wrapped line of a cell may lie from its row's middle: fpdf2 centres a
# row's cells vertically, lines 7.1 pt apart, so four lines lie within 10.65 pt; what follows
# a table starts at least a row's height (14.2 pt) below its last row's middle
REACH = 11.5


def _fragments(pdf: bytes) -> list[tuple[int, float, float, str]]:
    """(page, y from the top, x, text) of every drawn text fragment, in reading order."""
    out: list[tuple[int, float, float, str]] = []
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages):
        height = float(page.mediabox.height)

        def seen(text, cm, tm, _font, _size, number=number, height=height) -> None:
            if text.strip() and abs(tm[1]) < 1e-6 and abs(cm[1]) < 1e-6:  # not rotated
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                out.append((number, round(height - y, 1), round(x, 1), " ".join(text.split())))

        page.extract_text(visitor_text=seen)
    return sorted(out)


def read_table(pdf: bytes, headings: list[str], rows: int) -> list[list[str]]:
    """The ``rows`` body rows of the table whose heading row is ``headings`` (cells joined
    across wrapped lines), each a list of one text per column.

    A row's middle is where its first two columns both have text at the same height (fpdf2
    centres a row's cells: a wrapped cell's lines lie above and below it); every other line
    belongs to the nearest such middle within ``REACH``. A heading row repeated on a new page
    is skipped, and a rotated text (the draft's watermark) is no cell."""
    frags = _fragments(pdf)
    head = [
        (p, y, x, t)
        for p, y, x, t in frags
        if t == headings[0]
        and any(t2 == headings[1] and (p2, y2) == (p, y) for p2, y2, _, t2 in frags)
    ]
    assert head, f"no table headed {headings!r}"
    page0, y0 = head[0][0], head[0][1]
    xs = []
    for name in headings:
        at = [x for p, y, x, t in frags if (p, y) == (page0, y0) and t == name]
        assert at, f"heading {name!r} not on the heading row"
        xs.append(at[0])

    def column(x: float) -> int:
        return max(i for i, cx in enumerate(xs) if cx <= x + 1.0) if x + 1.0 >= xs[0] else -1

    body = [f for f in frags if (f[0], f[1]) > (page0, y0)]
    lines: dict[tuple[int, float], dict[int, list[str]]] = {}
    for p, y, x, t in body:
        lines.setdefault((p, y), {}).setdefault(column(x), []).append(t)
    starts = [
        key
        for key in sorted(lines)
        if 0 in lines[key]
        and 1 in lines[key]
        and [" ".join(lines[key].get(i, [])) for i in range(len(xs))] != headings
    ][:rows]
    out: list[list[list[str]]] = [[[] for _ in xs] for _ in starts]
    for key in sorted(lines):
        near = [
            (abs(key[1] - start[1]), n)
            for n, start in enumerate(starts)
            if start[0] == key[0] and abs(key[1] - start[1]) <= REACH
        ]
        if near:  # a line of the cells centred on that row's first line
            row = out[min(near)[1]]
            for i, texts in lines[key].items():
                if 0 <= i < len(xs):
                    row[i].extend(texts)
    assert len(out) == rows, (len(out), rows)
    return [[" ".join(" ".join(cell).split()) for cell in row] for row in out]
