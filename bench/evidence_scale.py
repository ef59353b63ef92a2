#!/usr/bin/env python
"""Classify a generated 10,000-statement migration.sql: parse, split, kind and target of every statement.

Prisma-style statements in rotation (tables, columns, indexes, foreign keys, enums, a DO block,
data backfills), so the parser sees the same shapes as real migrations. Prints the median time
over several rounds and statements per second. Target: under 2 s for 10,000 statements.

    .venv/bin/python bench/evidence_scale.py [--statements 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import build_model  # noqa: E402
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script  # noqa: E402

SHAPES = (
    '-- CreateTable\nCREATE TABLE "T{i}" (\n    "id" SERIAL NOT NULL,\n    "name" TEXT NOT NULL,\n'
    '    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n\n    CONSTRAINT "T{i}_pkey" PRIMARY KEY ("id")\n);\n',
    '-- AlterTable\nALTER TABLE "T{j}" ADD COLUMN "c{i}" VARCHAR(255) NOT NULL DEFAULT \'a;b\';\n',
    '-- CreateIndex\nCREATE UNIQUE INDEX "T{j}_c{i}_key" ON "T{j}"("c{i}");\n',
    '-- AddForeignKey\nALTER TABLE "T{j}" ADD CONSTRAINT "T{j}_r{i}_fkey" FOREIGN KEY ("r{i}") REFERENCES "T0"("id") '
    'ON DELETE RESTRICT ON UPDATE CASCADE;\n',
    '-- CreateEnum\nCREATE TYPE "E{i}" AS ENUM (\'A\', \'B\', \'C\');\n',
    'DO $$\nBEGIN\n    CREATE TYPE "D{i}" AS ENUM (\'X\');\nEXCEPTION\n    WHEN duplicate_object THEN null;\nEND $$;\n',
    'UPDATE "T{j}" SET "name" = lower("name") WHERE "id" > {i};\n',
    '-- RenameIndex\nALTER INDEX "T{j}_old{i}" RENAME TO "T{j}_new{i}";\n',
)


def generate(count: int) -> str:
    return "\n".join(SHAPES[i % len(SHAPES)].format(i=i, j=i // len(SHAPES)) for i in range(count))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    script = generate(args.statements)
    parse_times, model_times = [], []
    for _round in range(args.rounds):
        start = time.perf_counter()
        parsed = parse_script(script)
        middle = time.perf_counter()
        build_model(parsed.statements, "public")
        parse_times.append(middle - start)
        model_times.append(time.perf_counter() - middle)
        assert len(parsed.statements) == args.statements, len(parsed.statements)
    classify = statistics.median(parse_times)
    model = statistics.median(model_times)
    print("statements:            %d (%d bytes of SQL)" % (args.statements, len(script.encode("utf-8"))))
    print("classify (parse+kind): %.3f s median of %d, %.0f statements/s" % (classify, args.rounds, args.statements / classify))
    print("expected effects:      %.3f s median, %.0f statements/s" % (model, args.statements / model))
    print("total:                 %.3f s (target: classify under 2 s)" % (classify + model))
    return 0 if classify < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
