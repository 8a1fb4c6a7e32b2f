"""Column expressions (Ray 2.x's ``ray.data.expressions``): ``col("a")`` names a column,
``lit(3)`` a constant, and Python's operators combine them into a tree that
``Dataset.with_column(name, expr)`` and ``Dataset.filter(expr=...)`` evaluate on whole
columns, block by block, inside the block's task:

    col("price") * col("quantity")          BinaryExpr(mul, ColumnExpr(price), ColumnExpr(...))
    (col("x") > 5) & ~col("flag")           comparisons, & (and), | (or), ~ (not)
    col("name").is_in(["a", "b"])           is_in, not_in, is_null, is_not_null, alias

Evaluation runs on numpy arrays of the columns the expression names (no pandas, and for
Arrow blocks of numbers no copy). Missing values follow Arrow's rules: an operation on a
missing value gives a missing value (``&`` / ``|`` as Kleene logic), and ``filter`` drops the
rows whose predicate is missing. ``filter(expr="x > 5 and y < 2")`` also takes the same
predicate as Python source text, as Ray's (deprecated) string expressions.

Example:
    >>> import raylite as ray
    >>> from raylite.data.expressions import col, lit
    >>> ds = ray.data.from_items([{"x": i} for i in range(5)])
    >>> ds.filter(expr=(col("x") >= 2) & (col("x") != lit(3))).take_all()
    [ArrowRow({'x': 2}), ArrowRow({'x': 4})]
"""

from __future__ import annotations

import ast
from typing import Any

from raylite.data import _block
from raylite.data._block import Block
from raylite.data._stages import Stage, annotate_error, check_columns, require_table

__all__ = ["Expr", "ColumnExpr", "LiteralExpr", "BinaryExpr", "UnaryExpr", "AliasExpr", "col",
           "lit"]

# operator name -> (numpy ufunc name, symbol for repr)
_BINARY = {
    "add": ("add", "+"), "sub": ("subtract", "-"), "mul": ("multiply", "*"),
    "div": ("true_divide", "/"), "floordiv": ("floor_divide", "//"), "mod": ("mod", "%"),
    "pow": ("power", "**"), "eq": ("equal", "=="), "ne": ("not_equal", "!="),
    "lt": ("less", "<"), "le": ("less_equal", "<="), "gt": ("greater", ">"),
    "ge": ("greater_equal", ">="), "and": ("logical_and", "&"), "or": ("logical_or", "|"),
}


class Expr:
    """A column expression; combine with + - * / // % ** == != < <= > >= & | ~."""

    __hash__ = object.__hash__

    def _binary(self, op: str, other: Any, reflected: bool = False) -> "BinaryExpr":
        other = other if isinstance(other, Expr) else LiteralExpr(other)
        return BinaryExpr(op, other, self) if reflected else BinaryExpr(op, self, other)

    def __add__(self, other): return self._binary("add", other)
    def __radd__(self, other): return self._binary("add", other, True)
    def __sub__(self, other): return self._binary("sub", other)
    def __rsub__(self, other): return self._binary("sub", other, True)
    def __mul__(self, other): return self._binary("mul", other)
    def __rmul__(self, other): return self._binary("mul", other, True)
    def __truediv__(self, other): return self._binary("div", other)
    def __rtruediv__(self, other): return self._binary("div", other, True)
    def __floordiv__(self, other): return self._binary("floordiv", other)
    def __rfloordiv__(self, other): return self._binary("floordiv", other, True)
    def __mod__(self, other): return self._binary("mod", other)
    def __rmod__(self, other): return self._binary("mod", other, True)
    def __pow__(self, other): return self._binary("pow", other)
    def __rpow__(self, other): return self._binary("pow", other, True)
    def __eq__(self, other): return self._binary("eq", other)  # type: ignore[override]
    def __ne__(self, other): return self._binary("ne", other)  # type: ignore[override]
    def __lt__(self, other): return self._binary("lt", other)
    def __le__(self, other): return self._binary("le", other)
    def __gt__(self, other): return self._binary("gt", other)
    def __ge__(self, other): return self._binary("ge", other)
    def __and__(self, other): return self._binary("and", other)
    def __rand__(self, other): return self._binary("and", other, True)
    def __or__(self, other): return self._binary("or", other)
    def __ror__(self, other): return self._binary("or", other, True)
    def __invert__(self): return UnaryExpr("not", self)
    def __neg__(self): return UnaryExpr("neg", self)

    def __bool__(self) -> bool:
        raise TypeError("an expression has no truth value: combine conditions with & | ~ "
                        "(and parenthesize comparisons), not with and / or / not")

    def is_null(self) -> "UnaryExpr":
        """True where the value is missing (None or NaN)."""
        return UnaryExpr("is_null", self)

    def is_not_null(self) -> "UnaryExpr":
        """True where the value is present."""
        return UnaryExpr("is_not_null", self)

    def is_in(self, values: Any) -> "BinaryExpr":
        """True where the value is one of ``values`` (a list)."""
        return BinaryExpr("is_in", self, LiteralExpr(list(values)))

    def not_in(self, values: Any) -> "UnaryExpr":
        """True where the value is none of ``values``."""
        return UnaryExpr("not", self.is_in(values))

    def alias(self, name: str) -> "AliasExpr":
        """The same expression under another name."""
        return AliasExpr(self, name)

    def columns(self) -> set[str]:
        """The column names this expression reads."""
        raise NotImplementedError

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        """The values on columns given as ``{name: ndarray}`` (an array, or a scalar)."""
        raise NotImplementedError


class ColumnExpr(Expr):
    """An existing column, by name (``col("age")``)."""

    def __init__(self, name: str):
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> set[str]:
        return {self._name}

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        return columns[self._name]

    def __repr__(self) -> str:
        return f"col({self._name!r})"


class LiteralExpr(Expr):
    """A constant (``lit(3)``); plain Python values in operators become literals too."""

    def __init__(self, value: Any):
        self.value = value

    def columns(self) -> set[str]:
        return set()

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"lit({self.value!r})"


class BinaryExpr(Expr):
    """``left <op> right``."""

    def __init__(self, op: str, left: Expr, right: Expr):
        self.op, self.left, self.right = op, left, right

    def columns(self) -> set[str]:
        return self.left.columns() | self.right.columns()

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        np = _block.np()
        left = self.left.evaluate(columns, num_rows)
        right = self.right.evaluate(columns, num_rows)
        if self.op == "is_in":
            return np.isin(_as_array(left, num_rows), np.asarray(right, dtype=object)
                           if _is_object(left) else right)
        nulls = _either(_nulls(left, num_rows), _nulls(right, num_rows))
        if nulls is not None:  # missing values: null in, null out (Arrow's rules)
            if self.op in ("and", "or"):
                return _kleene(self.op, left, right, num_rows)
            return _where_valid(lambda a, b: getattr(np, _BINARY[self.op][0])(a, b),
                                nulls, left, right, num_rows)
        result = getattr(np, _BINARY[self.op][0])(left, right)
        return result.astype(bool) if self.op in ("eq", "ne", "lt", "le", "gt", "ge") and \
            getattr(result, "dtype", None) == object else result

    def __repr__(self) -> str:
        if self.op == "is_in":
            return f"{self.left!r}.is_in({self.right.value!r})"
        return f"({self.left!r} {_BINARY[self.op][1]} {self.right!r})"


class UnaryExpr(Expr):
    """``~operand``, ``-operand``, ``operand.is_null()``, ``operand.is_not_null()``."""

    def __init__(self, op: str, operand: Expr):
        self.op, self.operand = op, operand

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        np = _block.np()
        value = self.operand.evaluate(columns, num_rows)
        if self.op in ("not", "neg"):
            function = np.logical_not if self.op == "not" else np.negative
            nulls = _nulls(value, num_rows)
            if nulls is None:
                return function(value)
            return _where_valid(lambda a, _b: function(a), nulls, value, None, num_rows)
        missing = _missing(_as_array(value, num_rows))
        return missing if self.op == "is_null" else ~missing

    def __repr__(self) -> str:
        if self.op in ("not", "neg"):
            return f"{'~' if self.op == 'not' else '-'}{self.operand!r}"
        return f"{self.operand!r}.{self.op}()"


class AliasExpr(Expr):
    """An expression with a name of its own (``expr.alias("total")``)."""

    def __init__(self, expr: Expr, name: str):
        self.expr, self._name = expr, name

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> set[str]:
        return self.expr.columns()

    def evaluate(self, columns: dict, num_rows: int) -> Any:
        return self.expr.evaluate(columns, num_rows)

    def __repr__(self) -> str:
        return f"{self.expr!r}.alias({self._name!r})"


def col(name: str) -> ColumnExpr:
    """The column ``name``.

    Example:
        >>> from raylite.data.expressions import col
        >>> col("price") * col("quantity")
        (col('price') * col('quantity'))
    """
    if not isinstance(name, str):
        raise TypeError(f"col() takes a column name (str), got {name!r}")
    return ColumnExpr(name)


def lit(value: Any) -> LiteralExpr:
    """The constant ``value``.

    Example:
        >>> from raylite.data.expressions import col, lit
        >>> col("x") + lit(1)
        (col('x') + lit(1))
    """
    if isinstance(value, Expr):
        raise TypeError(f"lit() takes a constant, got the expression {value!r}")
    return LiteralExpr(value)


# ==========================================================================================
# evaluation helpers
# ==========================================================================================
def _is_object(values: Any) -> bool:
    return getattr(values, "dtype", None) == object


def _as_array(values: Any, num_rows: int):
    np = _block.np()
    if isinstance(values, np.ndarray):
        return values
    return np.full(num_rows, values, dtype=object if values is None else None)


def _nulls(values: Any, num_rows: int):
    """A bool mask of the missing values (None, or NaN), or None when there are none."""
    np = _block.np()
    if not isinstance(values, np.ndarray):
        return np.ones(num_rows, dtype=bool) if values is None or values != values else None
    if values.dtype.kind not in "fO":
        return None
    mask = _missing(values)
    return mask if mask.any() else None


def _either(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    return a | b


def _where_valid(function: Any, nulls: Any, left: Any, right: Any, num_rows: int):
    """``function(left, right)`` where no operand is missing, None elsewhere (object array)."""
    np = _block.np()
    valid = ~nulls
    out = np.full(num_rows, None, dtype=object)

    def pick(values: Any) -> Any:
        return values[valid] if isinstance(values, np.ndarray) else values
    if valid.any():
        out[valid] = function(pick(left), pick(right))
    return out


def _kleene(op: str, left: Any, right: Any, num_rows: int):
    """``and`` / ``or`` with missing values as unknown: False & None is False, True | None is
    True, anything else with None is None."""
    np = _block.np()

    def values(side: Any) -> list:
        items = side.tolist() if isinstance(side, np.ndarray) else [side] * num_rows
        return [None if v is None or v != v else bool(v) for v in items]
    out = []
    for a, b in zip(values(left), values(right)):
        if op == "and":
            out.append(False if False in (a, b) else None if None in (a, b) else True)
        else:
            out.append(True if True in (a, b) else None if None in (a, b) else False)
    return np.array(out, dtype=object)


def _missing(values):
    np = _block.np()
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype == object:
        return np.fromiter((v is None or v != v for v in values), dtype=bool, count=len(values))
    return np.zeros(len(values), dtype=bool)


def check_expression(expr: Any, operation: str) -> Any:
    if not isinstance(expr, Expr):
        raise TypeError(f"{operation} needs an expression from raylite.data.expressions "
                        f"(e.g. col('x') * 2), got {type(expr).__name__} {expr!r:.60}")
    return expr


def parse_predicate(text: str) -> Expr:
    """An expression from Python source such as ``"x > 5 and name == 'a'"``: names are
    columns, constants are literals; arithmetic, comparisons, and/or/not. Nothing is run."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"filter(expr={text!r}): not a valid expression ({exc.msg})") from None
    return _from_ast(tree, text)


_AST_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
               ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "and",
               ast.BitOr: "or"}
_AST_COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt",
                ast.GtE: "ge"}


def _from_ast(node: ast.AST, text: str) -> Expr:
    if isinstance(node, ast.Name):
        return ColumnExpr(node.id)
    if isinstance(node, ast.Constant):
        return LiteralExpr(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_BINARY:
        return BinaryExpr(_AST_BINARY[type(node.op)], _from_ast(node.left, text),
                          _from_ast(node.right, text))
    if isinstance(node, ast.BoolOp):
        parts = [_from_ast(value, text) for value in node.values]
        result = parts[0]
        for part in parts[1:]:
            result = BinaryExpr("and" if isinstance(node.op, ast.And) else "or", result, part)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert, ast.USub)):
        operand = _from_ast(node.operand, text)
        return UnaryExpr("neg" if isinstance(node.op, ast.USub) else "not", operand)
    if isinstance(node, ast.Compare) and all(type(op) in _AST_COMPARE or isinstance(
            op, (ast.In, ast.NotIn)) for op in node.ops):
        return _compare(node, text)
    raise ValueError(f"filter(expr={text!r}): {ast.unparse(node)!r} is not supported; use "
                     "column names, constants, arithmetic, comparisons and and/or/not (or "
                     "raylite.data.expressions.col / lit)")


def _compare(node: ast.Compare, text: str) -> Expr:
    left, result = _from_ast(node.left, text), None
    for op, right_node in zip(node.ops, node.comparators):
        right = _from_ast(right_node, text)
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, LiteralExpr) or not isinstance(right.value, (list, tuple)):
                raise ValueError(f"filter(expr={text!r}): 'in' needs a list of constants")
            part: Expr = left.is_in(right.value)
            part = UnaryExpr("not", part) if isinstance(op, ast.NotIn) else part
        else:
            part = BinaryExpr(_AST_COMPARE[type(op)], left, right)
        result = part if result is None else BinaryExpr("and", result, part)
        left = right
    return result


def _columns_of(block: Block, names: set[str], operation: str) -> dict:
    existing = _block.column_names(block) or []
    check_columns(sorted(names), existing, operation)
    if type(block) is not list:
        return {name: _block.column_to_numpy(block.column(name)) for name in names}
    return {name: _block._list_to_numpy([row[name] for row in block]) for name in names}


# ==========================================================================================
# the stages
# ==========================================================================================
class WithColumns(Stage):
    """``with_column`` / ``with_columns``: new columns from expressions, per block."""

    api = 1

    def __init__(self, exprs: dict):
        self.exprs = exprs
        self.name = "with_column(" + ", ".join(f"{name!r}: {expr!r}"
                                                 for name, expr in exprs.items()) + ")"

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        require_table(block, self.name, self.api)
        needed = set().union(*(expr.columns() for expr in self.exprs.values()))
        columns = _columns_of(block, needed, self.name)
        values = {}
        for name, expr in self.exprs.items():
            try:
                values[name] = _as_array(expr.evaluate(columns, total), total)
            except Exception as exc:
                raise annotate_error(exc, self.name, f"the expression {expr!r}", self.api)
        if type(block) is list:
            lists = {name: array.tolist() for name, array in values.items()}
            return [{**row, **{name: lists[name][i] for name in lists}}
                    for i, row in enumerate(block)]
        for name, array in values.items():
            arrow_values = _block.column_array(array)
            if name in block.column_names:
                block = block.set_column(block.column_names.index(name), name, arrow_values)
            else:
                block = block.append_column(name, arrow_values)
        return block


class ExpressionFilter(Stage):
    """``filter(expr=...)``: keep the rows where the predicate is true (missing: dropped)."""

    api = 1

    def __init__(self, expr: Expr):
        self.expr = expr
        self.name = f"filter({expr!r})"

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        require_table(block, self.name, self.api)
        columns = _columns_of(block, self.expr.columns(), self.name)
        try:
            keep = _as_array(self.expr.evaluate(columns, total), total)
        except Exception as exc:
            raise annotate_error(exc, self.name, f"a block of {total} rows", self.api)
        keep = _block.np().asarray(keep)
        if keep.dtype != bool:
            keep = keep.astype(object) == True  # noqa: E712 (None and non-True drop the row)
        return _block.filter_block(block, keep)
