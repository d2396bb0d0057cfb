"""factory_boy factories for the domain models."""
from decimal import Decimal

import factory

from accounts.models import User
from clusters.models import Cluster
from organizations.models import DEFAULT_PROJECT_NAME, Membership, Organization, Project, Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"org{n}")
    # As organizations.services.create_organization gives every organization its default project.
    default_project = factory.RelatedFactory("tests.factories.ProjectFactory", factory_related_name="organization",
                                             name=DEFAULT_PROJECT_NAME, is_default=True)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"project{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.DEVELOPER


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"cluster{n}")
    cpu_limit = Decimal("8")
    ram_limit = Decimal("32")
    gpu_limit = 2
