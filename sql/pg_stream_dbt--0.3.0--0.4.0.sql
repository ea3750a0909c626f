-- pg_stream_dbt 0.3.0 -> 0.4.0 (ALTER EXTENSION pg_stream_dbt UPDATE): create_stream_table takes
-- partition_by (a stream table may be a partitioned table); add_partition is new. Stream tables, catalog rows, capture
-- triggers and change buffers are kept as they are.

DROP FUNCTION pgstream.create_stream_table(text, text, text, text, bool);
CREATE FUNCTION pgstream."create_stream_table"(
	"name" TEXT,
	"query" TEXT,
	"schedule" TEXT DEFAULT '1m',
	"refresh_mode" TEXT DEFAULT 'DIFFERENTIAL',
	"initialize" bool DEFAULT true,
	"partition_by" TEXT DEFAULT NULL
) RETURNS void
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_stream_table_v4_wrapper';

-- add_partition: a partition added to a RANGE or LIST partitioned stream table, with the rows it
-- takes moved out of the DEFAULT partition.
CREATE FUNCTION pgstream."add_partition"(
	"stream_table" TEXT,
	"partition" TEXT,
	"in_values" TEXT[] DEFAULT NULL,
	"from_values" TEXT[] DEFAULT NULL,
	"to_values" TEXT[] DEFAULT NULL
) RETURNS bigint
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_partition_wrapper';
