use super::*;
use proptest::prelude::*;
use rust_decimal_macros_free::dec;

/// Decimal literal helper without a macro crate.
mod rust_decimal_macros_free {
    macro_rules! dec {
        ($s:expr) => {
            $s.parse::<rust_decimal::Decimal>().unwrap()
        };
    }
    pub(crate) use dec;
}

fn doc(json: serde_json::Value) -> DocumentInput {
    DocumentInput::from_json(json.to_string().as_bytes()).unwrap()
}

fn totals(tipo: u16, detalle: serde_json::Value, extra: serde_json::Value) -> Totals {
    let mut j = serde_json::json!({
        "Encabezado": {"IdDoc": {"TipoDTE": tipo, "FchEmis": "2026-11-20"}},
        "Detalle": detalle,
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            j[k] = v;
        }
    }
    let d = doc(j);
    compute(&d, TipoDte::from_code(tipo).unwrap(), &TaxTable::default(), Currency::Peso).unwrap().totals
}

#[test]
fn kat_33_global_discount() {
    let t = totals(
        33,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 104090}]),
        serde_json::json!({"DscRcgGlobal": [{"TpoMov": "D", "TpoValor": "%", "ValorDR": 10}]}),
    );
    assert_eq!((t.mnt_neto, t.iva, t.mnt_total), (Some(dec!("93681")), Some(dec!("17799")), dec!("111480")));
}

#[test]
fn kat_33_licores() {
    let t = totals(
        33,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 1000, "CodImpAdic": 24}]),
        serde_json::json!({}),
    );
    assert_eq!((t.mnt_neto, t.iva, t.mnt_total), (Some(dec!("1000")), Some(dec!("190")), dec!("1505")));
    assert_eq!(t.impto_reten[0].monto_imp, dec!("315"));
}

#[test]
fn kat_33_iva_anticipado_harina() {
    let t = totals(
        33,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 700000, "CodImpAdic": [19]}]),
        serde_json::json!({}),
    );
    assert_eq!((t.iva, t.impto_reten[0].monto_imp, t.mnt_total), (Some(dec!("133000")), dec!("84000"), dec!("917000")));
}

#[test]
fn kat_46_total_retention() {
    let t = totals(
        46,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 100000, "CodImpAdic": 15}]),
        serde_json::json!({}),
    );
    assert_eq!((t.iva, t.impto_reten[0].monto_imp, t.mnt_total), (Some(dec!("19000")), dec!("19000"), dec!("100000")));
    assert_eq!(t.iva_no_ret, None);
}

#[test]
fn kat_46_partial_retention_trigo() {
    let t = totals(
        46,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 10000, "CodImpAdic": 34}]),
        serde_json::json!({}),
    );
    assert_eq!(
        (t.iva, t.impto_reten[0].monto_imp, t.iva_no_ret, t.mnt_total),
        (Some(dec!("1900")), dec!("400"), Some(dec!("1500")), dec!("11500"))
    );
}

#[test]
fn kat_39_gross() {
    let t = totals(39, serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 1190}]), serde_json::json!({}));
    assert_eq!((t.mnt_neto, t.iva, t.mnt_total), (Some(dec!("1000")), Some(dec!("190")), dec!("1190")));
}

#[test]
fn kat_39_gross_discount() {
    let t = totals(
        39,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 1190, "DescuentoPct": 10}]),
        serde_json::json!({}),
    );
    assert_eq!((t.mnt_neto, t.iva, t.mnt_total), (Some(dec!("900")), Some(dec!("171")), dec!("1071")));
    let g = totals(
        39,
        serde_json::json!([{"NmbItem": "x", "QtyItem": 1, "PrcItem": 1190}]),
        serde_json::json!({"DscRcgGlobal": [{"TpoMov": "D", "TpoValor": "%", "ValorDR": 10}]}),
    );
    assert_eq!((g.mnt_neto, g.iva, g.mnt_total), (Some(dec!("900")), Some(dec!("171")), dec!("1071")));
}

#[test]
fn boleta_split_cases_where_naive_split_fails() {
    for (gross, neto, iva) in [(680, 571, 109), (86710, 72866, 13844)] {
        let t = totals(39, serde_json::json!([{"NmbItem": "x", "PrcItem": gross}]), serde_json::json!({}));
        assert_eq!(
            (t.mnt_neto, t.iva, t.mnt_total),
            (Some(Decimal::from(neto)), Some(Decimal::from(iva)), Decimal::from(gross))
        );
    }
}

#[test]
fn half_away_from_zero_and_foreign_currency() {
    assert_eq!(Currency::Peso.round(dec!("2.5")), dec!("3"));
    assert_eq!(Currency::Peso.round(dec!("-2.5")), dec!("-3"));
    assert_eq!(Currency::Peso.round(dec!("2.4999")), dec!("2"));
    assert_eq!(Currency::Foreign.round(dec!("10.12345")), dec!("10.1235"));
    let d = doc(serde_json::json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 34, "FchEmis": "2026-11-20"}},
        "Detalle": [{"NmbItem": "x", "IndExe": 1, "QtyItem": 3, "PrcItem": 10.12345}],
    }));
    let c = compute(&d, TipoDte::FacturaExenta, &TaxTable::default(), Currency::Foreign).unwrap();
    assert_eq!(c.totals.mnt_total, dec!("30.3704"));
}

#[test]
fn exempt_and_non_billable_buckets() {
    let t = totals(
        33,
        serde_json::json!([
            {"NmbItem": "a", "PrcItem": 1000},
            {"NmbItem": "b", "PrcItem": 500, "IndExe": 1},
            {"NmbItem": "c", "PrcItem": 200, "IndExe": 2}
        ]),
        serde_json::json!({"DscRcgGlobal": [{"TpoMov": "R", "TpoValor": "$", "ValorDR": 100, "IndExeDR": 1}]}),
    );
    assert_eq!(t.mnt_neto, Some(dec!("1000")));
    assert_eq!(t.mnt_exe, Some(dec!("600")));
    assert_eq!(t.mnt_total, dec!("1790"));
    assert_eq!((t.monto_nf, t.monto_periodo), (Some(dec!("200")), Some(dec!("1990"))));
}

#[test]
fn declared_mismatch_names_every_path() {
    let d = doc(serde_json::json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33, "FchEmis": "2026-11-20"}, "Totales": {"MntNeto": 1000, "IVA": 191, "MntTotal": 1191}},
        "Detalle": [{"NmbItem": "x", "PrcItem": 1000, "MontoItem": 999}],
    }));
    let c = compute(&d, TipoDte::Factura, &TaxTable::default(), Currency::Peso).unwrap();
    let paths: Vec<_> = check_declared(&d, &c).into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["Detalle[0].MontoItem", "Encabezado.Totales.IVA", "Encabezado.Totales.MntTotal"]);
}

#[test]
fn unknown_tax_code_and_negative_line() {
    let d = doc(serde_json::json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33, "FchEmis": "2026-11-20"}},
        "Detalle": [{"NmbItem": "x", "PrcItem": 1000, "CodImpAdic": 999}, {"NmbItem": "y", "PrcItem": 10, "DescuentoMonto": 20}],
    }));
    let e = compute(&d, TipoDte::Factura, &TaxTable::default(), Currency::Peso).unwrap_err();
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["Detalle[1].MontoItem", "Detalle[0].CodImpAdic[0]"]);
}

/// Writes the computed amounts back into the input, as a client echoing our answer would.
fn with_computed(mut d: DocumentInput, c: &Computed) -> DocumentInput {
    for (line, a) in d.detalle.iter_mut().zip(&c.lines) {
        line.monto_item = Some(a.monto_item);
        if line.descuento_pct.is_some() {
            line.descuento_monto = a.descuento_monto;
        }
    }
    let t = &c.totals;
    d.encabezado.totales = Some(crate::domain::document::Totales {
        mnt_neto: t.mnt_neto,
        mnt_exe: t.mnt_exe,
        tasa_iva: t.tasa_iva,
        iva: t.iva,
        impto_reten: t
            .impto_reten
            .iter()
            .map(|r| crate::domain::document::ImptoReten {
                tipo_imp: r.tipo_imp,
                tasa_imp: Some(r.tasa_imp),
                monto_imp: r.monto_imp,
            })
            .collect(),
        iva_no_ret: t.iva_no_ret,
        // The computed amount, declared: taken as given, within its limit.
        cred_ec: t.cred_ec.map(|v| serde_json::json!(v)),
        mnt_total: Some(t.mnt_total),
        monto_nf: t.monto_nf,
        monto_periodo: t.monto_periodo,
        ..Default::default()
    });
    d
}

fn arb_line() -> impl Strategy<Value = serde_json::Value> {
    (
        1u32..1000,
        0u64..10_000_000,
        0u32..10_000,
        prop::option::of(0u32..100),
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
        prop::sample::select(vec![0u16, 0, 0, 24, 19, 34, 15]),
    )
        .prop_map(|(qty_milli, prc, prc_cents, desc, exe, code)| {
            let mut l = serde_json::json!({
                "NmbItem": "item",
                "QtyItem": rust_decimal::Decimal::new(qty_milli as i64, 3),
                "PrcItem": rust_decimal::Decimal::new(prc as i64 * 100 + prc_cents as i64 % 100, 2),
            });
            if let Some(dp) = desc {
                l["DescuentoPct"] = serde_json::json!(dp);
            }
            if exe > 0 {
                l["IndExe"] = serde_json::json!(exe);
            } else if code > 0 {
                l["CodImpAdic"] = serde_json::json!(code);
            }
            l
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants(
        lines in prop::collection::vec(arb_line(), 1..8),
        tipo in prop::sample::select(vec![33u16, 46, 56, 61, 39]),
        cred in prop::bool::ANY,
    ) {
        // Construction companies' credit on the types that carry it.
        let cred = cred && matches!(tipo, 33 | 56 | 61);
        let mut lines = lines;
        if tipo == 39 {
            for l in lines.iter_mut() {
                if let Some(m) = l.as_object_mut() { m.remove("CodImpAdic"); }
            }
        }
        let mut input = serde_json::json!({
            "Encabezado": {"IdDoc": {"TipoDTE": tipo, "FchEmis": "2026-11-20"}},
            "Detalle": lines,
        });
        if cred {
            input["Encabezado"]["Totales"] = serde_json::json!({"CredEC": true});
        }
        let d = doc(input);
        let t = TipoDte::from_code(tipo).unwrap();
        let c = compute(&d, t, &TaxTable::default(), Currency::Peso);
        // Some random mixes have no taxed line for a tax code: those are refused, never miscomputed.
        let Ok(c) = c else { return Ok(()); };
        let tt = &c.totals;
        let z = Decimal::ZERO;
        // No negative totals.
        for v in [tt.mnt_neto, tt.mnt_exe, tt.iva, tt.monto_nf].into_iter().flatten().chain([tt.mnt_total]) {
            prop_assert!(v >= z, "negative amount {v}");
        }
        // The MntTotal identity.
        let adic: Decimal = tt.impto_reten.iter().map(|r| {
            if TaxTable::default().0[&r.tipo_imp].kind == TaxKind::A { r.monto_imp } else { -r.monto_imp }
        }).sum();
        let cred_ec = tt.cred_ec.unwrap_or(z);
        prop_assert_eq!(tt.mnt_total, tt.mnt_neto.unwrap_or(z) + tt.iva.unwrap_or(z) + tt.mnt_exe.unwrap_or(z) + adic - cred_ec);
        // CredEC is 65 % of the IVA, rounded once, and only where asked.
        prop_assert_eq!(tt.cred_ec.is_some(), cred && tt.iva.is_some());
        if let (Some(c), Some(iva)) = (tt.cred_ec, tt.iva) {
            prop_assert_eq!(c, (iva * Decimal::new(65, 2)).round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero));
        }
        // Whole pesos everywhere.
        prop_assert!(c.lines.iter().all(|l| l.monto_item.fract().is_zero()));
        // Computing again on our own output gives the same answer and no mismatch.
        let again_in = with_computed(d.clone(), &c);
        let again = compute(&again_in, t, &TaxTable::default(), Currency::Peso).unwrap();
        prop_assert_eq!(&again, &c);
        prop_assert!(check_declared(&again_in, &again).is_empty());
    }
}

#[test]
fn the_largest_amount_is_eighteen_nines() {
    assert_eq!(super::MAX_AMOUNT, Decimal::from_str_exact("999999999999999999").unwrap());
    assert_eq!(super::MAX_EXPORT_AMOUNT, Decimal::from_str_exact("99999999999999.9999").unwrap());
}

fn round(v: Decimal, dp: u32) -> Decimal {
    v.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// An export line: a quantity, a price of up to 4 decimals in the operation currency, maybe a
/// percentage discount.
fn arb_export_line() -> impl Strategy<Value = serde_json::Value> {
    (1u32..100_000, 1u64..50_000_000, prop::option::of(1u32..60)).prop_map(|(qty_milli, prc, desc)| {
        let mut l = serde_json::json!({
            "NmbItem": "item",
            "QtyItem": Decimal::new(qty_milli as i64, 3),
            "PrcItem": Decimal::new(prc as i64, 4),
        });
        if let Some(dp) = desc {
            l["DescuentoPct"] = serde_json::json!(dp);
        }
        l
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Exports: the identities hold in the operation currency to 4 decimals, line adjustments are
    /// whole units, and the peso total is the operation total × the rate, rounded once.
    #[test]
    fn export_totals_in_the_operation_currency(
        lines in prop::collection::vec(arb_export_line(), 1..8),
        recargo in prop::option::of(1u32..30),
        rate in 1u64..20_000_000,
        moneda in prop::sample::select(vec!["DOLAR USA", "EURO", "LIBRA EST", "YEN"]),
    ) {
        let rate = Decimal::new(rate as i64, 4);
        let mut input = serde_json::json!({
            "Encabezado": {"IdDoc": {"TipoDTE": 110, "FchEmis": "2026-11-20"},
                           "Receptor": {"RUTRecep": "55555555-5", "RznSocRecep": "Buyer"},
                           "Totales": {"TpoMoneda": moneda},
                           "OtraMoneda": {"TpoMoneda": "PESO CL", "TpoCambio": rate}},
            "Detalle": lines,
        });
        if let Some(r) = recargo {
            input["DscRcgGlobal"] = serde_json::json!([{"TpoMov": "R", "TpoValor": "%", "ValorDR": r}]);
        }
        let d = doc(input);
        let c = compute(&d, TipoDte::FacturaExportacion, &TaxTable::default(), Currency::Foreign).unwrap();
        let t = &c.totals;
        let sum: Decimal = c.lines.iter().map(|l| l.monto_item).sum::<Decimal>() + c.globals.iter().sum::<Decimal>();
        prop_assert_eq!(t.mnt_exe, Some(sum));
        prop_assert_eq!(t.mnt_total, sum);
        prop_assert!(t.mnt_neto.is_none() && t.iva.is_none() && t.impto_reten.is_empty());
        for (l, input) in c.lines.iter().zip(&d.detalle) {
            prop_assert!(l.monto_item.normalize().scale() <= 4);
            prop_assert!(l.descuento_monto.is_none_or(|v| v.fract().is_zero()), "MntImpType is whole");
            let base = round(input.qty_item.unwrap_or(Decimal::ONE) * input.prc_item.unwrap_or_default(), 4);
            prop_assert_eq!(l.monto_item, base - l.descuento_monto.unwrap_or_default());
        }
        let o = t.otra_moneda.as_ref().unwrap();
        prop_assert_eq!(o.mnt_total, round(t.mnt_total * rate, 0));
        prop_assert!((o.mnt_total - t.mnt_total * rate).abs() <= Decimal::new(5, 1));
    }

    /// A factura priced in another currency: its identities hold in that currency to 4 decimals
    /// and in whole pesos, and each peso line is its peso price × quantity, rounded once.
    #[test]
    fn a_factura_priced_in_another_currency(
        lines in prop::collection::vec(arb_export_line(), 1..8),
        rate in 1u64..20_000_000,
    ) {
        let rate = Decimal::new(rate as i64, 4);
        let lines: Vec<serde_json::Value> = lines.into_iter().map(|mut l| {
            let prc = l["PrcItem"].take();
            l.as_object_mut().unwrap().remove("PrcItem");
            l["OtrMnda"] = serde_json::json!({"PrcOtrMon": prc});
            l
        }).collect();
        let input = serde_json::json!({
            "Encabezado": {"IdDoc": {"TipoDTE": 33, "FchEmis": "2026-11-20"},
                           "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Buyer"},
                           "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": rate}},
            "Detalle": lines,
        });
        let emisor = "76192083-9".parse().unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let p = super::super::rules::prepare(doc(input), emisor, &TaxTable::default(), today).unwrap();
        let c = compute(&p.doc, TipoDte::Factura, &TaxTable::default(), Currency::Peso).unwrap();
        let (t, o) = (&c.totals, c.totals.otra_moneda.as_ref().unwrap());
        // In the other currency.
        let neto: Decimal = c.otr_lines.iter().map(|l| l.monto_item).sum();
        prop_assert_eq!(o.mnt_neto, Some(neto));
        prop_assert_eq!(o.iva, Some(round(neto * Decimal::new(19, 2), 4)));
        prop_assert_eq!(o.mnt_total, neto + o.iva.unwrap());
        // In pesos.
        prop_assert_eq!(t.mnt_total, t.mnt_neto.unwrap() + t.iva.unwrap());
        prop_assert_eq!(t.iva, Some(round(t.mnt_neto.unwrap() * Decimal::new(19, 2), 0)));
        for (d, l) in p.doc.detalle.iter().zip(&c.lines) {
            let m = d.otr_mnda.as_ref().unwrap();
            let prc = round(m.prc_otr_mon * rate, 6);
            prop_assert_eq!(d.prc_item, Some(prc.normalize()));
            let base = round(d.qty_item.unwrap_or(Decimal::ONE) * prc, 0);
            prop_assert_eq!(l.monto_item, base - l.descuento_monto.unwrap_or_default());
            prop_assert!(l.monto_item.fract().is_zero());
        }
    }
}
