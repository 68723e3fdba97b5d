"""Point labels that never overlap, and legend tables that never cut a label (matplotlib).

Plots of many multipliers cannot print every name next to its point: names collide. The plots
of the toolkit (``hw.cost`` Pareto plot, ``sim.dnn`` report) therefore number the points and list
``number -> full name`` in a table beside the axes:

* :func:`place_labels` puts short labels (the numbers) next to their points, greedily in the
  order given: for each label the first free position on rings of growing radius around its
  point (16 directions per ring), free meaning inside the axes and clear of every marker, line
  and error bar of the axes and of every label placed before; a label that had to move off the
  first ring gets a thin leader line. Positions are computed in display space once the figure's layout is final, so
  call it last (it fixes the layout: the figure's layout engine is switched off).
* :func:`wrap_label` splits a long name into lines without dropping a character (preferring
  breaks after ``, / : = & ? _``), for table cells of a fixed width.
* :func:`table_rows` writes such a table as one monospace text artist per row into an axes.
"""

from __future__ import annotations

import math

__all__ = ["place_labels", "wrap_label", "table_rows", "freeze_layout"]

_BREAK_AFTER = ",/:=&?_ "


def wrap_label(label: str, width: int) -> list[str]:
    """``label`` as lines of at most ``width`` characters whose concatenation is ``label``."""
    if width < 1:
        raise ValueError(f"width must be >= 1, not {width}")
    lines, rest = [], str(label)
    while len(rest) > width:
        cut = max(rest.rfind(ch, 0, width) for ch in _BREAK_AFTER) + 1
        if cut < max(1, width // 2):
            cut = width
        lines.append(rest[:cut])
        rest = rest[cut:]
    lines.append(rest)
    return lines


def freeze_layout(fig):
    """Run the figure's layout once (draw) and switch its layout engine off, so later artists
    cannot move the axes; returns the renderer."""
    fig.canvas.draw()
    fig.set_layout_engine("none")
    return fig.canvas.get_renderer()


def _overlap(a, b, pad):
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1]
                or b[3] + pad <= a[1])


def _line_boxes(disp, drawstyle, step=6.0):
    """Small display-space boxes covering a polyline (steps drawn as matplotlib draws them)."""
    import numpy as np
    from matplotlib.cbook import STEP_LOOKUP_MAP

    if drawstyle and drawstyle.startswith("steps"):
        xs, ys = STEP_LOOKUP_MAP[drawstyle](disp[:, 0], disp[:, 1])
        disp = np.column_stack([xs, ys])
    boxes = []
    for (x0, y0), (x1, y1) in zip(disp[:-1], disp[1:]):
        if not all(np.isfinite((x0, y0, x1, y1))):
            continue
        pieces = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        if abs(x1 - x0) < 2 or abs(y1 - y0) < 2:          # axis-aligned: one thin box
            pieces = 1
        for k in range(pieces):
            ax0, ay0 = x0 + (x1 - x0) * k / pieces, y0 + (y1 - y0) * k / pieces
            ax1, ay1 = x0 + (x1 - x0) * (k + 1) / pieces, y0 + (y1 - y0) * (k + 1) / pieces
            boxes.append((min(ax0, ax1) - 1, min(ay0, ay1) - 1, max(ax0, ax1) + 1,
                          max(ay0, ay1) + 1))
    return boxes


def place_labels(ax, points, labels, *, colors=None, fontsize=7, marker_px=None, pad_px=1.5,
                 obstacles=None, rings=40):
    """Annotate ``points`` (data coordinates) with ``labels`` without any two labels or a label
    and a marker overlapping (module docstring). ``marker_px``: half-size of the box kept clear
    around every marker of ``ax`` (default: each marker's own size); ``obstacles``: extra
    display-space boxes ``(x0, y0, x1, y1)`` to avoid. Returns the annotation artists."""
    import numpy as np

    fig = ax.figure
    renderer = freeze_layout(fig)
    box = ax.get_window_extent(renderer)
    frame = (box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1)
    px_per_pt = fig.dpi / 72.0
    from matplotlib.collections import LineCollection, PathCollection

    marks, segments = [], []          # (display xy array, half-size in px)
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PathCollection):               # scatter markers
            offs = coll.get_offsets()
            if len(offs) == 0:
                continue
            sizes = coll.get_sizes()
            half = 0.5 * math.sqrt(float(np.max(sizes)) if len(sizes) else 36.0) * px_per_pt
            marks.append((coll.get_offset_transform().transform(np.asarray(offs, float)),
                          half + 1))
        elif isinstance(coll, LineCollection):             # error bars: keep labels off them
            tr = coll.get_transform()
            for seg in coll.get_segments():
                if len(seg):
                    xy = tr.transform(np.asarray(seg, dtype=float))
                    segments.append((xy[:, 0].min() - 1, xy[:, 1].min() - 1,
                                     xy[:, 0].max() + 1, xy[:, 1].max() + 1))
    for line in ax.lines:                       # markers, and the lines themselves
        if not line.get_visible():
            continue
        xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
        disp = line.get_transform().transform(xy)
        if line.get_marker() not in (None, "None", "", " "):
            marks.append((disp, 0.5 * float(line.get_markersize()) * px_per_pt + 1))
        if line.get_linestyle() not in ("None", "none", "", " ") and len(disp) > 1:
            segments += _line_boxes(disp, line.get_drawstyle())
    if marker_px is not None:
        marks = [(xy, marker_px) for xy, _ in marks]
    own = max([h for _, h in marks], default=4.0)    # first ring: clear of the largest marker
    taken = [(x - h, y - h, x + h, y + h)
             for xy, h in marks for x, y in xy if np.isfinite(x) and np.isfinite(y)]
    taken += segments + list(obstacles or [])
    out = []
    anchor = ax.transData.transform(np.asarray(points, dtype=float).reshape(-1, 2))
    angles = [k * math.pi / 8 for k in (2, 0, 4, 6, 1, 3, 5, 7, 9, 11, 13, 15, 8, 10, 12, 14)]
    for i, label in enumerate(labels):
        color = colors[i] if colors is not None else "black"
        probe = ax.text(0, 0, str(label), fontsize=fontsize, transform=ax.transAxes)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        px, py = anchor[i]
        best = None
        for ring in range(rings):
            r = own + 1 + ring * max(3.0, 0.6 * h)
            for th in angles:
                cx = px + math.cos(th) * (r + w / 2)
                cy = py + math.sin(th) * (r + h / 2)
                cand = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                if (cand[0] < frame[0] or cand[1] < frame[1] or cand[2] > frame[2]
                        or cand[3] > frame[3]):
                    continue
                if any(_overlap(cand, t, pad_px) for t in taken):
                    continue
                best = (cx, cy, ring)
                break
            if best is not None:
                break
        if best is None:                         # nowhere free: the nearest spot, flagged
            best = (px + own + w / 2, py + own + h / 2, 0)
        cx, cy, ring = best
        dx, dy = (cx - px) / px_per_pt, (cy - py) / px_per_pt
        arrow = (dict(arrowstyle="-", lw=0.5, color=color, alpha=0.7, shrinkA=0, shrinkB=2)
                 if ring > 0 else None)
        t = ax.annotate(str(label), tuple(np.asarray(points[i], dtype=float)), xytext=(dx, dy),
                        textcoords="offset points", ha="center", va="center",
                        fontsize=fontsize, color=color, arrowprops=arrow, annotation_clip=False)
        out.append(t)
        taken.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return out


def table_rows(ax, rows, *, fontsize=7, top=1.0, colors=None, line_gap=1.25):
    """Write ``rows`` (each a list of lines) into ``ax`` (axis off) from ``top`` (axes
    fraction) downwards, one monospace text artist per row; returns the artists and the axes
    fraction below the last row."""
    ax.set_axis_off()
    fig = ax.figure
    height_px = ax.get_window_extent().height or 1.0
    line = fontsize * line_gap * fig.dpi / 72.0 / height_px
    y = top
    out = []
    for i, lines in enumerate(rows):
        t = ax.text(0.0, y, "\n".join(lines), transform=ax.transAxes, va="top", ha="left",
                    family="monospace", fontsize=fontsize, linespacing=line_gap,
                    color=colors[i] if colors is not None else "black")
        out.append(t)
        y -= line * len(lines) + line * 0.15
    return out, y
