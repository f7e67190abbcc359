use cellc::syntax::ast::*;
use cellc::syntax::{parse, normalize_source};

fn sexpr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => format!("{v}"),
        ExprKind::Var { name, time } => match time {
            None => name.name.clone(),
            Some(t) => format!("{}@{}", name.name, t.lag),
        },
        ExprKind::Neg(a) => format!("(neg {})", sexpr(a)),
        ExprKind::Binary { op, lhs, rhs, .. } => format!("({} {} {})", op.symbol(), sexpr(lhs), sexpr(rhs)),
        ExprKind::Call { func, args } => format!("({} {})", func.name, args.iter().map(sexpr).collect::<Vec<_>>().join(" ")),
        ExprKind::Concat(p) => format!("[{}]", p.iter().map(sexpr).collect::<Vec<_>>().join("; ")),
    }
}

#[test]
#[ignore]
fn explore() {
    let path = std::env::var("CELL_FILE").unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    for (i, case) in text.split("\n=====\n").enumerate() {
        let src = normalize_source(case);
        match parse(&src) {
            Ok(c) => {
                println!("--- case {i}: OK {} {:?}", c.name.name, c.inputs.iter().map(|i| (&i.name.name, &i.size.kind)).collect::<Vec<_>>());
                for it in &c.items {
                    match it {
                        Item::Equation(e) => println!("  {} {}= {}", e.targets.iter().map(|t| format!("{}{}", t.name.name, t.time.map(|t| format!("@{}", t.lag)).unwrap_or_default())).collect::<Vec<_>>().join(","), if e.destructuring {"[]"} else {""}, sexpr(&e.rhs)),
                        other => println!("  {:?}", other),
                    }
                }
            }
            Err(d) => println!("--- case {i}: ERR\n{}", d.render("t.cell", &src)),
        }
    }
}
