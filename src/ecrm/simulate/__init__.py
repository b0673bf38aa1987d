"""Deterministic simulator of a small online shop: shop exports, web access logs and ESP events
in the landing-zone formats of docs/formats.md, closing the loop with the warehouse's outbox."""

from .simulator import ShopSimulator

__all__ = ["ShopSimulator"]
