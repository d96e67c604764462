"""The application's operations, written as any SQLAlchemy 2.0 code is: the routing is the
Session's business, levels are chosen per statement where they matter."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from router_lib.consistency import Consistency
from router_lib.contrib.sqlalchemy_routing import CONSISTENCY_OPTION
from tests.sqlalchemy_app.models import Basket, Item

SERVER = select(func.host(func.inet_server_addr()))


def add_item(session: Session, name: str, owner: str = "ann") -> Item:
    basket = session.scalars(select(Basket).where(Basket.owner == owner)).first()
    if basket is None:
        basket = Basket(owner=owner)
        session.add(basket)
    item = Item(name=name, basket=basket)
    session.add(item)
    session.commit()
    return item


def item_names(session: Session, level: Consistency | None = None) -> list[str]:
    statement = select(Item.name).order_by(Item.name)
    if level is not None:
        statement = statement.execution_options(**{CONSISTENCY_OPTION: level})
    return list(session.scalars(statement))


def server(session: Session, level: Consistency | None = None) -> str:
    statement = SERVER if level is None else SERVER.execution_options(**{CONSISTENCY_OPTION: level})
    return str(session.scalar(statement))


async def add_item_async(session: AsyncSession, name: str) -> None:
    session.add(Item(name=name))
    await session.commit()


async def item_names_async(session: AsyncSession, level: Consistency | None = None) -> list[str]:
    options = {} if level is None else {CONSISTENCY_OPTION: level}
    result = await session.scalars(select(Item.name).order_by(Item.name), execution_options=options)
    return list(result)


async def server_async(session: AsyncSession, level: Consistency | None = None) -> str:
    options = {} if level is None else {CONSISTENCY_OPTION: level}
    return str(await session.scalar(SERVER, execution_options=options))
