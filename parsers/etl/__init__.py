"""ETL (Event Trace Log) decoding.

How layouts are declared and read (the rule for every module here):

- construct declares and builds. ``structs.py`` holds the construct definitions of the buffer header,
  the record headers and the logfile header, parameterized by pointer size; they are the written-down
  spec of the format, and ``build.py`` writes test files with them (nothing hand-packs bytes).
- numpy and C read. The hot paths (``container.py``'s record walk, ``kernel.py``, ``columnar.py``
  (the one decoder of ``layouts.py``'s payload layouts), the accelerators ``_speedups.c`` and ``_columnar.c``) never parse record by record
  with construct: they gather fields in bulk at offsets.
- A round-trip test keeps the two equal: files built with the construct definitions read back through
  the bulk readers with the same values (``tests/test_etl_build.py``,
  ``tests/test_etl_container.py::test_synthetic_file_of_every_header_type_round_trips``), and the C and
  Python walks are compared on the corpus and on damaged buffers.
- Tables are written once, beside the structs they describe: the record header types in
  ``records.py`` (``HEADER_TYPES``), which struct each is, their header sizes, pointer sizes and size fields
  in ``structs.py`` (``HEADER_KINDS`` lists each kind's 32- and 64-bit types once; ``KIND_OF``,
  ``POINTER_SIZES``, ``HEADER_SIZES``, ``SIZE_AT_4`` are derived from it and from the header structs); the container, the columnar decoder, file detection
  (``etwtools.sources``) and the builder import them from there. The C walker's copy (C cannot import
  them) is compared with them by ``tests/test_etl_container.py::test_c_walker_header_tables_equal_the_derived_ones``.
"""
