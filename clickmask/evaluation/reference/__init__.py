"""``clickmask eval --reference``: reference-guided segmentation on a part dataset (RefCut's combination protocol).

- :mod:`.pairs`: the targets of every object (single parts, touching pairs, the whole object) and the
  reference each one gets (the next object of its category, the same parts positive, the rest negative).
- :mod:`.benchmark`: the robot user on every target under each configuration (no reference, positive
  only, positive and negative, each use alone and together), and the report.
"""
