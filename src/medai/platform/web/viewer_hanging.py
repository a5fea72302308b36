"""How the viewer hangs a study the way a radiologist reads it: OHIF hanging protocols that
medai adds through an extension written inline in ``app-config.js`` (OHIF registers the
``hangingProtocolModule`` of every extension its configuration lists; nothing of OHIF is
forked), chosen by the study page's link (``?hangingProtocolId=``, ``protocol_for``).

- ``@medai/chest-pa-lateral``: a chest film's frontal view (PA or AP) and its lateral side by
  side, in one row;
- ``@medai/compare``: today's study and the prior side by side, the frontal view with the
  frontal view for a chest film and the largest series with the largest for an MR, their
  scrolling (slice position) and window/level linked.

Each viewport says which view it shows (``ViewPosition`` in its top-right corner) and which
study (the study date, top left, as OHIF shows it). OHIF's onboarding tour is switched off: a
radiologist opening a study is not shown a tutorial over it.
"""

from __future__ import annotations

import json
from typing import Any

FRONTAL = ["PA", "AP"]
LATERAL = ["LL", "RL", "LAT", "LATERAL", "LLD", "RLD"]
PA_LATERAL = "@medai/chest-pa-lateral"
COMPARE = "@medai/compare"
# the linked viewports' sync groups (OHIF's SyncGroupService): scrolling by position
# (``medaiSlice``, below) and window/level
LINKED = [
    {"type": "medaiSlice", "id": "medai-compare-slice", "source": True, "target": True},
    {"type": "voi", "id": "medai-compare-voi", "source": True, "target": True},
]


def _frames() -> dict[str, Any]:
    return {"attribute": "numImageFrames", "constraint": {"greaterThan": {"value": 0}}}


def _view(views: list[str], weight: int, required: bool) -> dict[str, Any]:
    return {
        "attribute": "ViewPosition",
        "constraint": {"includes": {"value": views}},
        "weight": weight,
        "required": required,
    }


def _study(index: int) -> list[dict[str, Any]]:
    """Rules for the study at ``index`` of the URL's StudyInstanceUIDs (0 today, 1 prior)."""
    return [
        {
            "attribute": "studyInstanceUIDsIndex",
            "from": "options",
            "required": True,
            "constraint": {"equals": {"value": index}},
        }
    ]


def _viewport(selector: str, sync: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {
        "viewportType": "stack",
        "toolGroupId": "default",
        "allowUnmatchedView": True,
    }
    if sync:
        options["syncGroups"] = LINKED
    return {"viewportOptions": options, "displaySets": [{"id": selector}]}


def _side_by_side(name: str, viewports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "viewportStructure": {"layoutType": "grid", "properties": {"rows": 1, "columns": 2}},
        "viewports": viewports,
    }


def _default_viewport(selector: str) -> dict[str, Any]:
    return {
        "viewportOptions": {
            "viewportType": "stack",
            "toolGroupId": "default",
            "allowUnmatchedView": True,
        },
        "displaySets": [{"id": selector, "matchedDisplaySetsIndex": -1}],
    }


def protocols() -> list[dict[str, Any]]:
    """medai's hanging protocols, as OHIF's HangingProtocolService reads them."""
    pa_lateral = {
        "id": PA_LATERAL,
        "name": "Chest PA + lateral",
        "description": "A chest film's frontal and lateral views side by side",
        "protocolMatchingRules": [],
        "toolGroupIds": ["default"],
        "displaySetSelectors": {
            "frontal": {"seriesMatchingRules": [_frames(), _view(FRONTAL, 10, True)]},
            "lateral": {"seriesMatchingRules": [_frames(), _view(LATERAL, 10, True)]},
        },
        "defaultViewport": _default_viewport("frontal"),
        "stages": [
            _side_by_side("PA + lateral", [_viewport("frontal"), _viewport("lateral")]),
        ],
    }
    # frontal views first for a chest film; otherwise the series with the most images
    prefer = [_frames(), _view(FRONTAL, 10, False)]
    compare = {
        "id": COMPARE,
        "name": "Current and prior",
        "description": "Today's study and the prior side by side, scrolling and W/L linked",
        "numberOfPriorsReferenced": 1,
        "protocolMatchingRules": [],
        "toolGroupIds": ["default"],
        "displaySetSelectors": {
            "current": {"studyMatchingRules": _study(0), "seriesMatchingRules": prefer},
            "prior": {"studyMatchingRules": _study(1), "seriesMatchingRules": prefer},
        },
        "defaultViewport": _default_viewport("current"),
        "stages": [
            _side_by_side(
                "current | prior", [_viewport("current", True), _viewport("prior", True)]
            ),
        ],
    }
    return [pa_lateral, compare]


# the view of the image a viewport shows, in its top-right corner (OHIF's overlay item)
VIEW_OVERLAY = """{
    id: "medaiViewPosition", inheritsFrom: "ohif.overlayItem", label: "", title: "View",
    condition: function (p) { return p.referenceInstance && p.referenceInstance.ViewPosition; },
    contentF: function (p) { return String(p.referenceInstance.ViewPosition); }
  }"""


# Scrolling linked by position, across two studies. Cornerstone3D's own image-slice
# synchronizer needs a spatial registration between two frames of reference, and the one it
# computes itself (calculateViewportsSpatialRegistration, OHIF 3.13.2) looks the image plane up
# by a slice *index* and finds none, so a prior never follows. This one registers the two
# series by their centres (a follow-up covers the same anatomy: the middle slice of each is
# taken to correspond) and moves the other viewport to the slice nearest the same position.
SLICE_SYNC = """function (id) {
    var cs = window.cornerstone, tools = window.cornerstoneTools;
    var ipp = function (imageId) {
      var m = cs.metaData.get("imagePlaneModule", imageId);
      return m && m.imagePositionPatient ? m.imagePositionPatient.map(Number) : null;
    };
    var centre = function (ids) {
      var a = ipp(ids[0]), b = ipp(ids[ids.length - 1]);
      return a && b ? [0, 1, 2].map(function (i) { return (a[i] + b[i]) / 2; }) : null;
    };
    return tools.SynchronizerManager.createSynchronizer(id, "CORNERSTONE_STACK_NEW_IMAGE",
      function (sync, source, target) {
        var engine = cs.getRenderingEngine(target.renderingEngineId);
        var sv = engine.getViewport(source.viewportId), tv = engine.getViewport(target.viewportId);
        if (!sv || !tv || !sv.getImageIds || !tv.getImageIds) return;
        var sIds = sv.getImageIds(), tIds = tv.getImageIds();
        var here = ipp(sv.getCurrentImageId()), sc = centre(sIds), tc = centre(tIds);
        if (!here || !sc || !tc || tIds.length < 2) return;
        var want = [0, 1, 2].map(function (i) { return here[i] - sc[i] + tc[i]; });
        var best = -1, gap = Infinity;
        tIds.forEach(function (imageId, k) {
          var p = ipp(imageId);
          if (!p) return;
          var d = Math.hypot(p[0] - want[0], p[1] - want[1], p[2] - want[2]);
          if (d < gap) { gap = d; best = k; }
        });
        if (best >= 0 && best !== tv.getCurrentImageIdIndex()) {
          return cs.utilities.jumpToSlice(tv.element, { imageIndex: best });
        }
      });
  }"""


def extension_js() -> str:
    """The inline OHIF extension that adds the protocols, the linked scrolling, the view
    label and no tour."""
    return (
        "window.config.extensions = [{\n"
        '  id: "@medai/reading",\n'
        "  preRegistration: function (args) {\n"
        "    args.servicesManager.services.syncGroupService.addSynchronizerType(\n"
        f'      "medaiSlice", {SLICE_SYNC});\n'
        "  },\n"
        f"  getHangingProtocolModule: function () {{ return {json.dumps(protocols())}"
        ".map(function (p) { return { name: p.id, protocol: p }; }); },\n"
        '  getCustomizationModule: function () { return [{ name: "global", value: {\n'
        f'    "viewportOverlay.topRight": [{VIEW_OVERLAY}],\n'
        '    "ohif.tours": []\n'
        "  } }]; }\n"
        "}];\n"
    )


def protocol_for(views: list[tuple[str, str | None]], has_prior: bool) -> str | None:
    """Which of medai's protocols the viewer opens a study with (``views``: each instance's
    series and ViewPosition): the comparison when the patient has a prior to open beside it,
    PA + lateral when a frontal view and a lateral are in two series (OHIF hangs series), else
    none (OHIF's default layout)."""
    if has_prior:
        return COMPARE
    frontal = {series for series, view in views if str(view or "").upper() in FRONTAL}
    lateral = {series for series, view in views if str(view or "").upper() in LATERAL}
    if frontal and lateral and (frontal - lateral) and (lateral - frontal):
        return PA_LATERAL
    return None
