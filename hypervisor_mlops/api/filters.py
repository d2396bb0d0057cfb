"""Query-string filters shared by every tenant-scoped list."""
import django_filters

from .queries import WholeNumberFormField


class WholeNumberFilter(django_filters.NumberFilter):
    """Matches a whole number as given, without looking up the object it may name.

    A filter that validated ids against the database would answer "not a valid choice" for an id that does
    not exist but an empty page for another tenant's: the same answer for both reveals nothing. 1.5 is a 400,
    and so is a number beyond the 64-bit ids (the database could not even compare it: a 500 on SQLite), and a
    blank (`?organization=`): absent is no filter, present is a number.
    """

    field_class = WholeNumberFormField

    def __init__(self, *args, min_value: int = -(2**63), max_value: int = 2**63 - 1, **kwargs):
        super().__init__(*args, min_value=min_value, max_value=max_value, **kwargs)
