"""Rate limits per API key and per user (token bucket), shared by every API process through the database."""

from sqlmodel import Field, SQLModel


class RateBucket(SQLModel, table=True):
    """One caller's bucket, as GCRA keeps it: the theoretical arrival time of the next request (seconds since
    the epoch). One row per caller, updated in one atomic statement per request."""

    __tablename__ = "rate_bucket"

    key: str = Field(primary_key=True, max_length=100)
    tat: float
