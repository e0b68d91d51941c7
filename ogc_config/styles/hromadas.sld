<?xml version="1.0" encoding="UTF-8"?>
<!-- AmberWatch style for hromadas (same colours as the MapServer classes in ogc_config/mapserver/). -->
<StyledLayerDescriptor version="1.0.0" xmlns="http://www.opengis.net/sld" xmlns:ogc="http://www.opengis.net/ogc"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.opengis.net/sld http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd">
  <NamedLayer>
    <Name>hromadas</Name>
    <UserStyle>
      <Name>default</Name>
      <Title>Hromada boundaries with names</Title>
      <FeatureTypeStyle>
        <Rule>
          <Name>hromadas</Name>
          <Title>Hromada boundaries with names</Title>
          <PolygonSymbolizer>
            <Stroke>
              <CssParameter name="stroke">#9e9ac8</CssParameter>
              <CssParameter name="stroke-width">0.8</CssParameter>
              <CssParameter name="stroke-dasharray">3 3</CssParameter>
            </Stroke>
          </PolygonSymbolizer>
          <TextSymbolizer>
            <Label><ogc:PropertyName>name</ogc:PropertyName></Label>
            <Font><CssParameter name="font-family">DejaVu Sans</CssParameter><CssParameter name="font-size">8</CssParameter></Font>
            <Halo><Radius>2</Radius><Fill><CssParameter name="fill">#ffffff</CssParameter></Fill></Halo>
            <Fill><CssParameter name="fill">#9e9ac8</CssParameter></Fill>
          </TextSymbolizer>
        </Rule>
      </FeatureTypeStyle>
    </UserStyle>
  </NamedLayer>
</StyledLayerDescriptor>
