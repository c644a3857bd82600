"""The visual fix loop: render a page in headless Chromium, compare it with a target image, locate the
differences in the DOM and the sources, and drive the model until the render matches (SPEC §7).

Modules: browser (finding and launching Chromium), render (deterministic capture, network blocked),
compare (score, regions, heatmap), locate (region → elements → source file:line), annotate (red marks
on bug screenshots), pipeline (one render + compare + locate → the §7 object), checkpoint (per-iteration
snapshots), loop (the fix loop), report (the HTML report). See README.md in this folder.
"""
