"""The LTX-2.x family (LTX-2 19B, LTX-2.3 and LTX-2.5 22B): joint audio + video on diffusers' Apache-2.0 classes.

Only this package names LTX-2's diffusers classes; everything else reaches it through
:class:`~ltx_train_lib.models.ltx2.family.Ltx2Family`. Lightricks' own LTX-2 code (ltx-core / ltx-trainer, under the
LTX-2.x Community License) is not used or copied.
"""
