

def test_a_view_no_benchmark_renders_is_one_clear_error():
    import pytest

    from sfbench.core.errors import InvalidConfig
    from sfbench.policies.base import Requirements

    with pytest.raises(InvalidConfig, match=r"asks for views \['top'\], which no benchmark renders; valid views"):
        Requirements(views=("agentview", "top"))
