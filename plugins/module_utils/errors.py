# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type module_utils raise: a message for the operator plus structured details."""

from __future__ import annotations


class PrismaOpsError(Exception):
    """A failure the operator can act on. `msg` never holds a secret; `details` go into fail_json."""

    def __init__(self, msg: str, **details) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
