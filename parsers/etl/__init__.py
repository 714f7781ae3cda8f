"""ETL (Event Trace Log) decoding."""
