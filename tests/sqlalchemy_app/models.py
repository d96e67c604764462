from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Basket(Base):
    __tablename__ = "basket"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(50))
    items: Mapped[list[Item]] = relationship(back_populates="basket", order_by="Item.id")


class Item(Base):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    basket_id: Mapped[int | None] = mapped_column(ForeignKey("basket.id"))
    basket: Mapped[Basket | None] = relationship(back_populates="items")
