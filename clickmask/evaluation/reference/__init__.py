"""``clickmask eval --reference``: reference-guided segmentation (RefCut's combination protocol).

- :mod:`.cases`: a *case* (a target and its reference, as mask files), a dataset's case set, and which
  builder a dataset folder gets from its layout (:func:`~.cases.open_cases`);
- the builders, one per kind of dataset: :mod:`.pairs` (a part dataset, PascalPart: single parts,
  touching pairs of parts and whole objects, the next object of the category as the reference, the
  same parts positive, the rest negative), :mod:`.combinations` (an instance dataset, COCO128: unions
  of two touching instances, the next such pair of the same categories on another image as the
  reference), :mod:`.frames` (a video dataset, DAVIS2016_dev: every 10th frame, the video's first
  frame as the reference);
- :mod:`.benchmark`: the robot user on every case under each configuration (no reference, positive
  only, positive and negative, each use alone and together), and the report.
"""
