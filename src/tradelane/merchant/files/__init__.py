"""The Files merchant adapter: a drop folder of catalog and stock files, for merchants with no API.

* :mod:`~tradelane.merchant.files.folder`: the folder's layout (``inbox/``, ``processed/``,
  ``rejected/``), picking settled files oldest first, atomic no-clobber moves and sidecar files;
* :mod:`~tradelane.merchant.files.stock`: reading stock files (``sku``, ``quantity``);
* :mod:`~tradelane.merchant.files.capabilities`: what a folder sends (catalog, stock or both);
* :mod:`~tradelane.merchant.files.settings`: a folder's stored settings, validated.

The merchant system (kind ``files``) and the self-perpetuating ``merchant.files.scan`` job that applies
the files are a service: :mod:`tradelane.services.files_scan`.
"""
