"""The shared base for contract input and output models: camelCase on the wire."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base model for every contract's IO.

    Python attributes are snake_case; JSON keys are camelCase. Unknown keys are refused,
    so a typo in a request is an error rather than a silently ignored field.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        revalidate_instances="always",
        serialize_by_alias=True,
    )
