"""The ``math`` offline source: worked problems with their solutions, generated from the seed.

Every answer is computed (exact fractions where it matters), so the worked solutions are correct. Twenty
kinds of problem: linear equations, systems of two equations, factoring quadratics, the quadratic formula,
fractions, percentages, ratios, gcd by Euclid's algorithm, prime factorisation, arithmetic and geometric
series, mean/median/mode, probability with dice and coins, combinations, Pythagoras, areas, derivatives,
integrals, logarithms, modular arithmetic and rate word problems.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from fractions import Fraction

from .textgen import GIVEN_NAMES


def frac(x: Fraction) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def signed(n: int | Fraction, first: bool = False) -> str:
    """``+ 3`` / ``- 3`` (or ``3`` / ``-3`` when ``first``)."""
    if first:
        return frac(Fraction(n))
    return f"+ {frac(Fraction(n))}" if n >= 0 else f"- {frac(-Fraction(n))}"


def term(coef: int, var: str, first: bool = False) -> str:
    """``3x``, ``- x``, ``+ 2y`` ..."""
    mag = abs(coef)
    body = var if mag == 1 else f"{mag}{var}"
    if first:
        return body if coef >= 0 else f"-{body}"
    return f"+ {body}" if coef >= 0 else f"- {body}"


def linear_equation(rng: random.Random) -> str:
    a = rng.choice([i for i in range(-12, 13) if i not in (0, 1, -1)])
    x = Fraction(rng.randint(-20, 20), rng.choice((1, 1, 1, 2, 3)))
    b = rng.randint(-50, 50)
    c = a * x + b
    return (f"Solve {term(a, 'x', True)} {signed(b)} = {frac(c)}.\n"
            f"Subtract {b} from both sides: {term(a, 'x', True)} = {frac(c)} - ({b}) = {frac(c - b)}.\n"
            f"Divide both sides by {a}: x = ({frac(c - b)})/({a}) = {frac((c - b) / a)}.\n"
            f"Check: {a}({frac(x)}) {signed(b)} = {frac(a * x + b)}.")


def linear_system(rng: random.Random) -> str:
    while True:
        a, b, d, e = (rng.randint(-7, 7) for _ in range(4))
        det = a * e - b * d
        if det != 0 and 0 not in (a, b, d, e):
            break
    x, y = rng.randint(-9, 9), rng.randint(-9, 9)
    c, f = a * x + b * y, d * x + e * y
    return (f"Solve the system {term(a, 'x', True)} {term(b, 'y')} = {c} and {term(d, 'x', True)} {term(e, 'y')} = {f}.\n"
            f"By Cramer's rule the determinant is ({a})({e}) - ({b})({d}) = {det}.\n"
            f"x = (({c})({e}) - ({b})({f})) / ({det}) = {frac(Fraction(c * e - b * f, det))}.\n"
            f"y = (({a})({f}) - ({c})({d})) / ({det}) = {frac(Fraction(a * f - c * d, det))}.\n"
            f"So (x, y) = ({x}, {y}).")


def factor_quadratic(rng: random.Random) -> str:
    p, q = rng.randint(-12, 12), rng.randint(-12, 12)
    s, t = -(p + q), p * q
    return (f"Factor x^2 {term(s, 'x')} {signed(t)}.\n"
            f"We need two numbers whose product is {t} and whose sum is {s}: {-p} and {-q}.\n"
            f"So x^2 {term(s, 'x')} {signed(t)} = (x {signed(-p)})(x {signed(-q)}), and the roots are "
            f"x = {p} and x = {q}.")


def quadratic_formula(rng: random.Random) -> str:
    a = rng.choice((1, 2, 3, -1, -2, 4, 5))
    b, c = rng.randint(-15, 15), rng.randint(-20, 20)
    disc = b * b - 4 * a * c
    lines = [f"Solve {term(a, 'x^2', True)} {term(b, 'x')} {signed(c)} = 0 with the quadratic formula.",
             f"The discriminant is b^2 - 4ac = ({b})^2 - 4({a})({c}) = {disc}."]
    if disc < 0:
        lines.append("It is negative, so there are no real roots.")
    elif disc == 0:
        lines.append(f"It is zero, so there is one repeated root x = -b/(2a) = {frac(Fraction(-b, 2 * a))}.")
    else:
        r = math.isqrt(disc)
        if r * r == disc:
            x1, x2 = Fraction(-b + r, 2 * a), Fraction(-b - r, 2 * a)
            lines.append(f"Its square root is {r}, so x = ({-b} ± {r})/{2 * a}, giving x = {frac(x1)} or x = {frac(x2)}.")
        else:
            x1, x2 = (-b + math.sqrt(disc)) / (2 * a), (-b - math.sqrt(disc)) / (2 * a)
            lines.append(f"So x = ({-b} ± √{disc})/{2 * a}, approximately x = {x1:.4f} or x = {x2:.4f}.")
    return "\n".join(lines)


def fraction_arithmetic(rng: random.Random) -> str:
    def proper() -> Fraction:
        while True:
            x = Fraction(rng.randint(1, 11), rng.randint(2, 12))
            if x.denominator > 1:
                return x

    p, q = proper(), proper()
    op = rng.choice("+-×÷")
    if op == "+":
        lcd = p.denominator * q.denominator // math.gcd(p.denominator, q.denominator)
        result = p + q
        work = (f"The least common denominator is {lcd}: {frac(p)} = {p.numerator * lcd // p.denominator}/{lcd} and "
                f"{frac(q)} = {q.numerator * lcd // q.denominator}/{lcd}.\n"
                f"Adding the numerators gives {p.numerator * lcd // p.denominator + q.numerator * lcd // q.denominator}/{lcd}")
    elif op == "-":
        lcd = p.denominator * q.denominator // math.gcd(p.denominator, q.denominator)
        result = p - q
        work = (f"The least common denominator is {lcd}: {frac(p)} = {p.numerator * lcd // p.denominator}/{lcd} and "
                f"{frac(q)} = {q.numerator * lcd // q.denominator}/{lcd}.\n"
                f"Subtracting the numerators gives {p.numerator * lcd // p.denominator - q.numerator * lcd // q.denominator}/{lcd}")
    elif op == "×":
        result = p * q
        work = f"Multiply numerators and denominators: ({p.numerator}×{q.numerator})/({p.denominator}×{q.denominator}) = {p.numerator * q.numerator}/{p.denominator * q.denominator}"
    else:
        result = p / q
        work = f"Dividing by {frac(q)} is multiplying by {q.denominator}/{q.numerator}: {frac(p)} × {q.denominator}/{q.numerator} = {p.numerator * q.denominator}/{p.denominator * q.numerator}"
    return f"Compute {frac(p)} {op} {frac(q)}.\n{work}, which in lowest terms is {frac(result)}."


def percentage(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        price, pct = rng.randrange(10, 500, 5), rng.choice((5, 10, 12, 15, 20, 25, 30, 40))
        off = Fraction(price * pct, 100)
        return (f"A coat costs {price} dollars and is reduced by {pct}%. What is the sale price?\n"
                f"The reduction is {pct}/100 × {price} = {float(off):g} dollars, so the sale price is "
                f"{price} - {float(off):g} = {float(price - off):g} dollars.")
    if kind == 1:
        old, new = rng.randint(20, 400), rng.randint(20, 400)
        change = Fraction(new - old, old) * 100
        word = "increase" if new >= old else "decrease"
        return (f"A town's population of birds went from {old} to {new}. What is the percentage change?\n"
                f"The change is {new} - {old} = {new - old}. Dividing by the original {old} and multiplying by 100 "
                f"gives {float(change):.2f}%, a {word}.")
    whole, pct = rng.randint(40, 900), rng.choice((15, 35, 45, 60, 75, 80))
    part = Fraction(whole * pct, 100)
    return (f"What number is {pct}% of {whole}?\n{pct}% means {pct}/100, and {pct}/100 × {whole} = {float(part):g}.")


def ratio(rng: random.Random) -> str:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    unit = rng.randint(2, 30)
    total = (a + b) * unit
    n1, n2 = rng.sample(GIVEN_NAMES, 2)
    return (f"{n1} and {n2} share {total} marbles in the ratio {a}:{b}. How many does each get?\n"
            f"There are {a} + {b} = {a + b} equal parts, so one part is {total}/{a + b} = {unit}.\n"
            f"{n1} gets {a} × {unit} = {a * unit} and {n2} gets {b} × {unit} = {b * unit}.")


def gcd_euclid(rng: random.Random) -> str:
    g = rng.randint(2, 30)
    a, b = g * rng.randint(5, 60), g * rng.randint(2, 40)
    if a < b:
        a, b = b, a
    lines = [f"Find gcd({a}, {b}) with Euclid's algorithm."]
    x, y = a, b
    while y:
        lines.append(f"{x} = {x // y} × {y} + {x % y}")
        x, y = y, x % y
    lcm = a * b // x
    lines.append(f"The last non-zero remainder is {x}, so gcd({a}, {b}) = {x} and lcm({a}, {b}) = {a}×{b}/{x} = {lcm}.")
    return "\n".join(lines)


def prime_factors(rng: random.Random) -> str:
    n = 1
    for p in rng.choices((2, 3, 5, 7, 11, 13, 17), k=rng.randint(3, 6)):
        n *= p
    factors, m, d, steps = Counter(), n, 2, []
    while m > 1:
        while m % d == 0:
            steps.append(f"{m} ÷ {d} = {m // d}")
            factors[d] += 1
            m //= d
        d += 1
    form = " × ".join(f"{p}^{k}" if k > 1 else str(p) for p, k in sorted(factors.items()))
    divisors = math.prod(k + 1 for k in factors.values())
    return (f"Write {n} as a product of primes.\n" + "\n".join(steps)
            + f"\nSo {n} = {form}, and it has {divisors} positive divisors.")


def series(rng: random.Random) -> str:
    if rng.random() < 0.5:
        a, d, n = rng.randint(-10, 20), rng.randint(-5, 9), rng.randint(5, 40)
        last = a + (n - 1) * d
        return (f"Find the sum of the first {n} terms of the arithmetic sequence {a}, {a + d}, {a + 2 * d}, ...\n"
                f"Term number {n} is {a} + ({n} - 1)({d}) = {last}.\n"
                f"The sum is n(first + last)/2 = {n}({a} + {last})/2 = {n * (a + last) // 2}.")
    a, r, n = rng.randint(1, 9), rng.choice((2, 3, -2, 4, 5)), rng.randint(3, 9)
    total = a * (r**n - 1) // (r - 1)
    return (f"Find the sum of the first {n} terms of the geometric sequence {a}, {a * r}, {a * r * r}, ...\n"
            f"With first term {a} and ratio {r}, the sum is a(r^n - 1)/(r - 1) = {a}(({r})^{n} - 1)/({r} - 1) = {total}.")


def statistics(rng: random.Random) -> str:
    xs = [rng.randint(1, 60) for _ in range(rng.randint(5, 11))]
    xs_sorted = sorted(xs)
    n, total = len(xs), sum(xs)
    mid = n // 2
    median = Fraction(xs_sorted[mid]) if n % 2 else Fraction(xs_sorted[mid - 1] + xs_sorted[mid], 2)
    counts = Counter(xs)
    top = max(counts.values())
    modes = sorted(v for v, c in counts.items() if c == top)
    mode_text = "there is no mode (every value appears once)" if top == 1 else f"the mode is {', '.join(map(str, modes))}"
    return (f"For the data {', '.join(map(str, xs))}, find the mean, median and mode.\n"
            f"The sum is {total} over {n} values, so the mean is {total}/{n} ≈ {total / n:.3f}.\n"
            f"Sorted: {', '.join(map(str, xs_sorted))}; the median is {frac(median)}.\n"
            f"Finally, {mode_text}. The range is {xs_sorted[-1]} - {xs_sorted[0]} = {xs_sorted[-1] - xs_sorted[0]}.")


def probability(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        target = rng.randint(2, 12)
        ways = sum(1 for i in range(1, 7) for j in range(1, 7) if i + j == target)
        pairs = ", ".join(f"({i},{j})" for i in range(1, 7) for j in range(1, 7) if i + j == target)
        return (f"Two fair dice are rolled. What is the probability that the total is {target}?\n"
                f"The favourable outcomes are {pairs}: {ways} of the 36 equally likely outcomes.\n"
                f"So the probability is {ways}/36" + (f" = {frac(Fraction(ways, 36))}." if Fraction(ways, 36).denominator != 36 else "."))
    if kind == 1:
        n = rng.randint(3, 10)
        k = rng.randint(0, n)
        p = Fraction(math.comb(n, k), 2**n)
        return (f"A fair coin is tossed {n} times. What is the probability of exactly {k} heads?\n"
                f"There are C({n}, {k}) = {math.comb(n, k)} sequences with {k} heads out of 2^{n} = {2**n}.\n"
                f"The probability is {frac(p)}.")
    red, blue = rng.randint(1, 9), rng.randint(1, 9)
    p = Fraction(red, red + blue) * Fraction(red - 1, red + blue - 1)
    return (f"A bag holds {red} red and {blue} blue counters. Two are drawn without replacement. What is the "
            f"probability that both are red?\n"
            f"P(first red) = {red}/{red + blue} and P(second red | first red) = {red - 1}/{red + blue - 1}.\n"
            f"Multiplying gives {frac(p)}.")


def combinations(rng: random.Random) -> str:
    n = rng.randint(5, 16)
    k = rng.randint(2, min(6, n - 1))
    things = rng.choice(("books from a shelf of", "players from a squad of", "toppings from a menu of",
                         "questions from a list of"))
    return (f"In how many ways can {k} {things.split()[0]} be chosen {' '.join(things.split()[1:])} {n}, if order "
            f"does not matter?\nC({n}, {k}) = {n}! / ({k}! × {n - k}!) = {math.comb(n, k)}.\n"
            f"If the order did matter, there would be {n}!/{n - k}! = {math.perm(n, k)} arrangements.")


def pythagoras(rng: random.Random) -> str:
    m, n = rng.randint(2, 9), rng.randint(1, 8)
    if n >= m:
        m, n = n + 1, m
    k = rng.randint(1, 4)
    a, b, c = k * (m * m - n * n), k * 2 * m * n, k * (m * m + n * n)
    if rng.random() < 0.5:
        return (f"A right triangle has legs {a} and {b}. How long is the hypotenuse?\n"
                f"c^2 = {a}^2 + {b}^2 = {a * a} + {b * b} = {c * c}, so c = √{c * c} = {c}.")
    return (f"A ladder {c} m long leans against a wall with its foot {a} m from the wall. How high does it reach?\n"
            f"h^2 = {c}^2 - {a}^2 = {c * c} - {a * a} = {b * b}, so h = {b} m.")


def areas(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        w, h = rng.randint(2, 40), rng.randint(2, 40)
        return (f"A rectangular garden is {w} m by {h} m. Find its area and perimeter.\n"
                f"Area = {w} × {h} = {w * h} m^2. Perimeter = 2({w} + {h}) = {2 * (w + h)} m.")
    if kind == 1:
        r = rng.randint(1, 25)
        return (f"Find the area and circumference of a circle of radius {r} cm.\n"
                f"Area = πr^2 = {r * r}π ≈ {math.pi * r * r:.2f} cm^2. Circumference = 2πr = {2 * r}π ≈ "
                f"{2 * math.pi * r:.2f} cm.")
    b, h = rng.randint(2, 30), rng.randint(2, 30)
    return (f"A triangle has base {b} and height {h}. What is its area?\n"
            f"Area = (1/2) × base × height = (1/2) × {b} × {h} = {frac(Fraction(b * h, 2))}.")


def derivative(rng: random.Random) -> str:
    terms = sorted({rng.randint(0, 7) for _ in range(rng.randint(2, 4))}, reverse=True)
    coefs = [rng.choice([i for i in range(-9, 10) if i]) for _ in terms]

    def poly(cs: list[int], ps: list[int]) -> str:
        parts = []
        for i, (c, p) in enumerate(zip(cs, ps)):
            var = "" if p == 0 else "x" if p == 1 else f"x^{p}"
            if p == 0:
                parts.append(signed(c, first=i == 0))
            else:
                parts.append(term(c, var, first=i == 0))
        return " ".join(parts) if parts else "0"

    d_coefs = [c * p for c, p in zip(coefs, terms) if p > 0]
    d_pows = [p - 1 for p in terms if p > 0]
    x0 = rng.randint(-3, 3)
    value = sum(c * x0**p for c, p in zip(d_coefs, d_pows))
    return (f"Differentiate f(x) = {poly(coefs, terms)} and evaluate f'({x0}).\n"
            f"By the power rule, d/dx (c x^n) = c n x^(n-1), term by term.\n"
            f"f'(x) = {poly(d_coefs, d_pows)}, so f'({x0}) = {value}.")


def integral(rng: random.Random) -> str:
    n = rng.randint(0, 5)
    c = rng.randint(1, 9)
    lo, hi = sorted(rng.sample(range(-3, 6), 2))
    value = Fraction(c, n + 1) * (Fraction(hi) ** (n + 1) - Fraction(lo) ** (n + 1))
    integrand = f"{c}" if n == 0 else f"{c}x" if n == 1 else f"{c}x^{n}"
    return (f"Evaluate the integral of {integrand} from {lo} to {hi}.\n"
            f"An antiderivative is ({c}/{n + 1}) x^{n + 1}.\n"
            f"So the integral is ({c}/{n + 1})(({hi})^{n + 1} - ({lo})^{n + 1}) = {frac(value)}.")


def logarithm(rng: random.Random) -> str:
    base = rng.choice((2, 3, 5, 10))
    k = rng.randint(2, 6 if base < 10 else 4)
    m = rng.randint(1, 3)
    return (f"Simplify log_{base}({base**k}) + log_{base}({base**m}).\n"
            f"Since {base}^{k} = {base**k} and {base}^{m} = {base**m}, the logs are {k} and {m}.\n"
            f"Their sum is {k + m}, which is also log_{base}({base**k} × {base**m}) = log_{base}({base**(k + m)}).")


def modular(rng: random.Random) -> str:
    mod = rng.choice((5, 7, 9, 11, 12, 13))
    base, exp = rng.randint(2, 12), rng.randint(5, 40)
    steps, result, b, e = [], 1, base % mod, exp
    while e:
        if e & 1:
            result = result * b % mod
        steps.append(f"{b}")
        b, e = b * b % mod, e >> 1
    return (f"Compute {base}^{exp} mod {mod}.\n"
            f"Square repeatedly: the powers {base}^(2^i) mod {mod} are {', '.join(steps)}.\n"
            f"Multiplying those selected by the binary digits of {exp} ({exp:b}) gives {base}^{exp} ≡ "
            f"{pow(base, exp, mod)} (mod {mod}).")


def rate_problem(rng: random.Random) -> str:
    name = rng.choice(GIVEN_NAMES)
    speed, hours = rng.randint(3, 90), rng.randint(1, 9)
    minutes = rng.choice((0, 15, 20, 30, 45))
    t = Fraction(hours * 60 + minutes, 60)
    dist = speed * t
    if rng.random() < 0.5:
        return (f"{name} travels at {speed} km/h for {hours} h {minutes} min. How far is that?\n"
                f"{hours} h {minutes} min is {frac(t)} hours, so the distance is {speed} × {frac(t)} = "
                f"{float(dist):g} km.")
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    together = Fraction(a * b, a + b)
    return (f"One pump fills a tank in {a} hours and another in {b} hours. How long do they take together?\n"
            f"Together they fill 1/{a} + 1/{b} = {frac(Fraction(1, a) + Fraction(1, b))} of the tank per hour, so "
            f"the time is {frac(together)} hours ≈ {float(together):.2f} hours.")


PROBLEMS: tuple[Callable[[random.Random], str], ...] = (
    linear_equation, linear_system, factor_quadratic, quadratic_formula, fraction_arithmetic, percentage, ratio,
    gcd_euclid, prime_factors, series, statistics, probability, combinations, pythagoras, areas, derivative,
    integral, logarithm, modular, rate_problem,
)

HEADINGS = ("Worked examples", "Practice problems with solutions", "Exercises", "Revision sheet",
            "Homework solutions", "Examples from class")


def worked_math_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """Sheets of two to five worked problems of mixed kinds, in a seeded order, forever."""
    rng = random.Random(seed)
    while True:
        k = rng.randint(2, 5)
        problems = [rng.choice(PROBLEMS)(rng) for _ in range(k)]
        body = "\n\n".join(f"Problem {i + 1}. {text}" for i, text in enumerate(problems))
        yield f"{rng.choice(HEADINGS)}\n\n{body}" if rng.random() < 0.5 else body
