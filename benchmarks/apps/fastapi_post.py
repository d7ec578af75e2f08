"""FastAPI: POST with a JSON body validated by a pydantic model, answered with a response model."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)
    quantity: int = Field(ge=1)
    tags: list[str] = []


class Order(BaseModel):
    name: str
    total: float
    tags: list[str]


@app.post("/items")
async def create_item(item: Item) -> Order:
    return Order(name=item.name, total=item.price * item.quantity, tags=item.tags)
