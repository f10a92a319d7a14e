"""The workbook's orchestration: the comparison pipeline, the notebook runner and its records, the lessons' recorded studies, the benchmark."""
