"""ClickHouse: schema migrations, columnar writers and the reads behind the report."""
